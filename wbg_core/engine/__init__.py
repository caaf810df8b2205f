"""The discovery engine: active learning in the autoencoder's latent space (campaign),
screening of generated candidates by band-gap window, and the paper's four experiments.

Heavy modules (torch, gpytorch, the models) load on first use; import the submodules.
"""
