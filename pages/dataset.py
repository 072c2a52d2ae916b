"""Dataset: a classifier over a whole dataset, its explanations aggregated, on the local pool or Ray."""

import streamlit as st

from app.features import dataset as page
from app.features.dataset import DatasetView
from app.links import binding, catalogue
from app.ui import messages, session
from app.ui.pickers import model_picker
from app.ui.settings import settings
from model_zoo import get_spec

st.title("Dataset")
bound = binding.bind(DatasetView)
messages.link_problems(bound.problems)
keys = session.WidgetKeys(DatasetView.PAGE, force=bound.opened)
seed = bound.view

controls, output = st.columns([1, 2.6], gap="large")
with settings(controls, keys) as ui:
    model = model_picker(keys, catalogue.dataset_models(), seed.model, host=ui)
    choices = page.datasets()
    dataset = ui.selectbox("Dataset", choices, key=keys.key("dataset", seed.dataset, choices),
                           help="The held-out split, a dataset this server was started with, or your own zip")
    uploaded = page.upload_dataset(keys, ui) if dataset == page.UPLOAD else None
    limit, engine, workers, params = page.run_settings(keys, seed, ui)

view = binding.settle(bound, DatasetView(model, dataset, limit, engine, workers, params))
binding.publish(view)
labels = tuple(get_spec(model).input.labels)

with output:
    if view.link:
        saved = page.saved_results(view.link)
        if saved is not None:
            st.caption("A saved dataset analysis, as it was shared; change a setting and Run to analyse again.")
            page.results(view, *saved, labels)
    else:
        data = page.dataset_for(view, uploaded, labels)
        job = page.current_job(view)
        if data is not None and st.button("Run again" if job else "Run", icon=":material/play_arrow:",
                                          type="primary", key="dataset-run"):
            page.start_job(view, data, labels)
            job = page.current_job(view)
        if job is None:
            st.caption("Choose a model and a dataset, then Run. Each example gets Integrated Gradients and "
                       "deletion/insertion curves; results appear as chunks finish.")
        else:
            page.live(job, view, labels)
