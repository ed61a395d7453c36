// SSKDOptim: filled by its issue.
