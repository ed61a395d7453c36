// Trampolines: see include/sskd_lua_shim.h
#include "sskd_lua_shim.h"
#include <string.h>

#define SSKD_MAGIC 0x53534b44u  /* "SSKD" */

static sskd_dispatch_fn dispatch = 0;

void sskd_set_dispatch(sskd_dispatch_fn fn) { dispatch = fn; }

/// Raises the error a Swift function reported, after it has returned.
static int raise_status(lua_State *L, int status) {
    if (status == SSKD_ERROR_MESSAGE) {
        luaL_where(L, 1);      // "file:line: " of the calling Lua code
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

static int trampoline(lua_State *L) {
    int id = (int)lua_tointeger(L, lua_upvalueindex(1));
    int n = dispatch(L, id);
    if (n >= 0) return n;
    return raise_status(L, n);
}

void sskd_push_function(lua_State *L, int id) {
    lua_pushinteger(L, id);
    lua_pushcclosure(L, trampoline, 1);
}

static int index_trampoline(lua_State *L) {
    // 1: object, 2: key. Methods first, without entering Swift.
    lua_settop(L, 2);
    if (lua_type(L, 2) == LUA_TSTRING) {
        lua_pushvalue(L, 2);
        if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
        lua_pop(L, 1);
    }
    if (lua_isnil(L, lua_upvalueindex(2))) { lua_pushnil(L); return 1; }
    int id = (int)lua_tointeger(L, lua_upvalueindex(2));
    int n = dispatch(L, id);
    if (n >= 0) return n;
    return raise_status(L, n);
}

void sskd_push_index(lua_State *L, int methods_index, int fallback_id) {
    methods_index = lua_absindex(L, methods_index);
    lua_pushvalue(L, methods_index);
    if (fallback_id >= 0) lua_pushinteger(L, fallback_id); else lua_pushnil(L);
    lua_pushcclosure(L, index_trampoline, 2);
}

static int type_key;  /* address used as the registry key of the metatables table */

static void push_metatables(lua_State *L) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &type_key) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &type_key);
    }
}

void sskd_set_type_metatable(lua_State *L, int type) {
    push_metatables(L);
    lua_insert(L, -2);
    lua_rawseti(L, -2, type);
    lua_pop(L, 1);
}

void sskd_get_type_metatable(lua_State *L, int type) {
    push_metatables(L);
    lua_rawgeti(L, -1, type);
    lua_remove(L, -2);
}

sskd_box *sskd_push_box(lua_State *L, int type, void *object) {
    sskd_box *box = (sskd_box *)lua_newuserdatauv(L, sizeof(sskd_box), 0);
    box->magic = SSKD_MAGIC;
    box->type = type;
    box->object = object;
    sskd_get_type_metatable(L, type);
    lua_setmetatable(L, -2);
    return box;
}

sskd_box *sskd_to_box(lua_State *L, int index) {
    if (lua_type(L, index) != LUA_TUSERDATA) return NULL;
    if (lua_rawlen(L, index) != sizeof(sskd_box)) return NULL;
    sskd_box *box = (sskd_box *)lua_touserdata(L, index);
    if (box == NULL || box->magic != SSKD_MAGIC) return NULL;
    return box;
}

int sskd_traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int sskd_pcall(lua_State *L, int nargs, int nresults, int traceback) {
    if (!traceback) return lua_pcall(L, nargs, nresults, 0);
    int base = lua_gettop(L) - nargs;  // the function's index
    lua_pushcfunction(L, sskd_traceback);
    lua_insert(L, base);
    int status = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    return status;
}

int sskd_loadfile(lua_State *L, const char *path) { return luaL_loadfilex(L, path, "t"); }

int sskd_loadbuffer(lua_State *L, const char *buffer, size_t size, const char *chunkname) {
    return luaL_loadbufferx(L, buffer, size, chunkname, "t");
}

static int tostring_protected(lua_State *L) {
    luaL_tolstring(L, 1, NULL);
    return 1;
}

const char *sskd_tostring(lua_State *L, int index, size_t *len) {
    index = lua_absindex(L, index);
    lua_pushcfunction(L, tostring_protected);
    lua_pushvalue(L, index);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        const char *err = lua_tostring(L, -1);
        lua_pushfstring(L, "(__tostring failed: %s)", err ? err : "?");
        lua_remove(L, -2);
    }
    return lua_tolstring(L, -1, len);
}

static int openlibs_protected(lua_State *L) { luaL_openlibs(L); return 0; }

int sskd_openlibs(lua_State *L) {
    lua_pushcfunction(L, openlibs_protected);
    return lua_pcall(L, 0, 0, 0);
}

int sskd_gc_step(lua_State *L, int kb) { return lua_gc(L, LUA_GCSTEP, kb); }
int sskd_gc_collect(lua_State *L) { return lua_gc(L, LUA_GCCOLLECT); }
int sskd_gc_kb(lua_State *L) { return lua_gc(L, LUA_GCCOUNT); }
