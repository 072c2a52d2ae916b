"""The runtime: models, results, guards, the store, shares and inputs, shared by the web app and the command line.

Nothing here imports streamlit: ``zooscope analyze`` runs an analysis through exactly the guards the
server uses (:func:`app.runtime.compute.run`).
"""
