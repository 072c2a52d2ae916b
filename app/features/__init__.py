"""One module per page: its link state (a frozen view read from and written to the URL) and its panels."""
