"""Neural surrogates: LDNet, observation encoders, VAE baselines, training and checkpoints."""
