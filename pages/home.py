"""Home: what zooscope is, a gallery of curated analyses, this browser's shares, and the published ones."""

import streamlit as st

from app import navigation
from app.features.home import Curated, LinkView, gallery, has_gallery, published_shares, your_shares
from app.links import binding
from app.ui import messages

bound = binding.bind(LinkView)  # ?id=… opens the shared analysis on its own page
messages.link_problems(bound.problems)

st.title("zooscope")
st.write("Look inside small neural networks that read handwritten digits and sentences: which pixels a "
         "decision rests on, where attention goes, how a latent space is laid out, how capsules route. "
         "Every view can be shared as a link that reopens exactly the same analysis.")

cols = st.columns(3)
for i, page in enumerate(p for p in navigation.available() if p.name != "home"):
    with cols[i % 3]:
        st.page_link(str(page.file), label=page.title, icon=page.icon)
        st.caption(page.purpose)

GALLERY = (
    Curated("Integrated Gradients on a 7", "attribution",
            {"model": "vit-dot", "method": "integrated_gradients", "sample": "700"}, 700),
    Curated("Occlusion on a 3", "attribution", {"model": "vit-dot", "method": "occlusion", "sample": "300"}, 300),
    Curated("Capsule network, IG on a 5", "attribution",
            {"model": "capsnet", "method": "integrated_gradients", "sample": "500"}, 500),
    Curated("IG vs SmoothGrad vs Occlusion", "compare",
            {"sample": "200", "columns": "vit-dot:integrated_gradients,vit-dot:smoothgrad,vit-dot:occlusion"}, 200),
    Curated("ViT vs capsule network on an 8", "compare",
            {"sample": "800", "columns": "vit-dot:integrated_gradients,capsnet:integrated_gradients"}, 800),
    Curated("Dot-product vs Synthesizer attention", "compare",
            {"sample": "900", "columns": "vit-dot:integrated_gradients,vit-random:integrated_gradients,"
                                         "vit-dense:integrated_gradients"}, 900),
)

st.subheader("Curated analyses")
gallery(GALLERY)

st.subheader("Your shares")
your_shares()

if has_gallery():
    st.subheader("Published by visitors")
    published_shares()

binding.publish(bound.view)
