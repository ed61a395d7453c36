#pragma once
// CLuaShim: the only C code of the Lua host.
//
// Lua raises errors with longjmp, and a longjmp across Swift frames is undefined behaviour. So
// every Lua-callable function is a C trampoline here: it calls the Swift implementation through
// one dispatch pointer, and only after Swift has returned does it call lua_error. Swift never
// calls a raising Lua API (lua_error, luaL_check*, unprotected lua_call); it calls Lua through
// sskd_pcall (with a traceback handler). The inline wrappers below exist because Swift cannot
// import Lua's function-like macros.
#include <stddef.h>
#include <stdint.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

/// Swift returns this (after pushing a message string) to raise an error with `file:line:` added.
#define SSKD_ERROR_MESSAGE (-1)
/// Swift returns this to re-raise the value on top of the stack unchanged (an error from a pcall).
#define SSKD_ERROR_VALUE (-2)

/// Runs Swift function `id` on `L`; returns the number of results, or an SSKD_ERROR_* status.
typedef int (*sskd_dispatch_fn)(lua_State *L, int id);

/// Installs the Swift dispatcher (once per process).
void sskd_set_dispatch(sskd_dispatch_fn fn);

/// Pushes a Lua function that calls Swift function `id`.
void sskd_push_function(lua_State *L, int id);

/// Pushes the `__index` function of a userdata type: a raw lookup in the methods table at
/// `methods_index` first (fast path for `x:method()`), then Swift function `fallback_id` with
/// (object, key) for fields and indexing (nil when fallback_id < 0).
void sskd_push_index(lua_State *L, int methods_index, int fallback_id);

/// The block of every Swift object userdata: a retained object pointer and its type id.
typedef struct {
    uint32_t magic;
    int32_t type;
    void *object;  // Unmanaged<AnyObject>, retained; NULL after __gc
} sskd_box;

/// Stores metatable (on top, popped) as the metatable of type `type`.
void sskd_set_type_metatable(lua_State *L, int type);
/// Pushes the metatable of type `type` (nil if none).
void sskd_get_type_metatable(lua_State *L, int type);
/// Pushes a new userdata box for `object` of type `type` with the type's metatable.
sskd_box *sskd_push_box(lua_State *L, int type, void *object);
/// The box at `index`, or NULL when the value is not one of ours.
sskd_box *sskd_to_box(lua_State *L, int index);

/// Message handler for sskd_pcall: appends a traceback to string messages.
int sskd_traceback(lua_State *L);
/// lua_pcall with sskd_traceback as message handler when `traceback` is non-zero.
int sskd_pcall(lua_State *L, int nargs, int nresults, int traceback);
/// Loads a file/buffer without running it (never raises).
int sskd_loadfile(lua_State *L, const char *path);
int sskd_loadbuffer(lua_State *L, const char *buffer, size_t size, const char *chunkname);
/// luaL_tolstring in a protected call (it may run __tostring); pushes the string or an error text.
const char *sskd_tostring(lua_State *L, int index, size_t *len);
/// Opens the standard libraries in a protected call; returns a status.
int sskd_openlibs(lua_State *L);

/// Garbage collector controls (lua_gc is variadic).
int sskd_gc_step(lua_State *L, int kb);
int sskd_gc_collect(lua_State *L);
int sskd_gc_kb(lua_State *L);

/// The per-state pointer slot (LUA_EXTRASPACE) where Swift keeps its host object.
static inline void **sskd_extraspace(lua_State *L) { return (void **)lua_getextraspace(L); }

static inline int sskd_registryindex(void) { return LUA_REGISTRYINDEX; }
static inline int sskd_upvalueindex(int i) { return lua_upvalueindex(i); }
static inline void sskd_pop(lua_State *L, int n) { lua_pop(L, n); }
static inline void sskd_insert(lua_State *L, int i) { lua_insert(L, i); }
static inline void sskd_remove(lua_State *L, int i) { lua_remove(L, i); }
static inline void sskd_newtable(lua_State *L) { lua_newtable(L); }
static inline void sskd_pushglobaltable(lua_State *L) { lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS); }
static inline int sskd_isinteger_value(lua_State *L, int i, lua_Integer *out) {
    int ok = 0; lua_Integer v = lua_tointegerx(L, i, &ok); if (ok) *out = v; return ok;
}
