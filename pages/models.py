"""Models: the model cards of the zoo (metrics, size, parameters, training, paper)."""

import streamlit as st

from app import messages, session, state, views
from app.state import ModelsView
from model_zoo import REGISTRY

st.title("Models")
bound = state.bind(ModelsView)
messages.link_problems(bound.problems)
keys = session.WidgetKeys(ModelsView.PAGE, force=bound.opened)

st.dataframe(views.model_table(), hide_index=True)
names = list(REGISTRY)
name = st.selectbox("Model card", names, key=keys.key("model", bound.view.model, names), format_func=views.model_label)
views.model_card(name)
state.publish(ModelsView(name))
