-- returns a number instead of a factory
return 42
