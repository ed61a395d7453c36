// SSKDNN: filled by its issue.
