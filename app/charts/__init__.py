"""Pure Altair builders, one module per kind of figure, and exports to files (no streamlit, no models)."""
