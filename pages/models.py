"""Models: the model cards of the zoo, of the user's own folders and of plugins (and what was refused)."""

import streamlit as st

from app.features.models import ModelsView, model_card, model_table, refused_models
from app.links import binding
from app.ui import messages, session
from app.ui.pickers import model_label
from model_zoo import all_models

st.title("Models")
bound = binding.bind(ModelsView)
messages.link_problems(bound.problems)
keys = session.WidgetKeys(ModelsView.PAGE, force=bound.opened)

refused_models()
st.dataframe(model_table(), hide_index=True)
names = list(all_models())
name = st.selectbox("Model card", names, key=keys.key("model", bound.view.model, names), format_func=model_label)
model_card(name)
binding.publish(ModelsView(name))
