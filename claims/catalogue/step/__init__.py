"""Step-level claims: TRPO's update on neural policies (section 6, App. C), measured by the
paper's definitions on real batches (KL, surrogate, restoration, Fisher products, sampling)."""
