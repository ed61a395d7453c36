// SSKDLua: filled by its issue.
