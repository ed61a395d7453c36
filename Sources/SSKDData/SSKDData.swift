// SSKDData: filled by its issue.
