// SSKDTrain: filled by its issue.
