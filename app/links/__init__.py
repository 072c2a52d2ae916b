"""Links: the URL codec (no streamlit), the catalogue of allowed values, and binding a page's view to the browser."""
