// Trampolines: see include/sskd_lua_shim.h
