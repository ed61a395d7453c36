// Modules written in Lua: `nn.Module{name=, init=function(self, ...) end, forward=function(self, x) end}`
// returns a constructor (the prelude's wrapper around `sskd._new_module`). An instance is a real
// Module (it trains, prints, saves and summarises like the Swift layers): assigning a Module to
// `self.name` registers a child, a tensor that requires grad a parameter, another tensor a
// buffer; other values live in a per-instance Lua table. Other functions of the class table are
// methods (`self:helper()`).
import CLua
import CLuaShim
import SSKDNN
import SSKDTensor

/// A Module whose forward is a Lua function.
final class LuaModule: Module {
    let className: String
    /// The class table (forward, init, methods); instances never reference back, so no cycle.
    let classRef: LuaRef
    /// Plain Lua values assigned to the instance (`self.scale = 2`).
    let fieldsRef: LuaRef

    init(className: String, classRef: LuaRef, fieldsRef: LuaRef) {
        self.className = className
        self.classRef = classRef
        self.fieldsRef = fieldsRef
        super.init()
    }

    override var typeName: String { className }

    override func forward(_ x: Tensor) throws -> Tensor {
        guard let host = classRef.host else { throw LuaError("\(className): its Lua state is closed") }
        let base = lua_gettop(host.L)
        defer { lua_settop(host.L, base) }
        try classRef.push()
        guard host.call.rawField(-1, "forward") == LUA_TFUNCTION else { throw LuaError("\(className) has no forward function") }
        let f = host.value(at: -1)
        let r = try host.call(f, [.object(self), .tensor(x)])
        guard let y = r.first?.tensor else {
            throw LuaError("\(className).forward must return a Tensor, got \(r.first?.typeName ?? "nothing")")
        }
        return y
    }

    /// Pushes a plain field or a class method; false when there is none.
    func pushField(_ L: OpaquePointer, _ key: String) throws -> Bool {
        let c = LuaCall(L, name: className)
        try fieldsRef.push()
        if c.rawField(-1, key) != LUA_TNIL { lua_rotate(L, -2, 1); c.pop(); return true }
        c.pop(2)
        try classRef.push()
        if c.rawField(-1, key) != LUA_TNIL { lua_rotate(L, -2, 1); c.pop(); return true }
        c.pop(2)
        return false
    }

    /// `self.key = value` (value at stack index 3).
    func assign(_ c: LuaCall, _ key: String) throws {
        if let m = c.toObject(3, Module.self) {
            guard m !== self else { throw LuaError("\(className): a module cannot be its own child ('\(key)')") }
            try checkNesting(m, under: self, className)
            registerModule(key, m)
        } else if let t = c.toObject(3, Tensor.self) {
            if t.requiresGrad { registerParameter(key, t) } else { registerBuffer(key, t) }
        } else {
            guard children.first(where: { $0.name == key }) == nil, localParameters.first(where: { $0.name == key }) == nil else {
                throw LuaError("\(className): '\(key)' is a registered child or parameter; assign a Module or Tensor")
            }
            try fieldsRef.push()
            c.pushValue(2); c.pushValue(3)
            lua_rawset(c.L, -3)
            c.pop()
        }
    }
}

enum LuaModuleBindings {
    static func register() {
        LuaLibraries.named("sskd").function("_new_module", "sskd._new_module(class, name) -> Module", "internal: an uninitialised Lua-defined module (use nn.Module)") { c in
            guard let host = LuaHost.from(c.L) else { throw LuaError("no host") }
            try c.table(1)
            let name = try c.string(2)
            c.pushValue(1)
            let classRef = LuaRef(host: host)
            lua_createtable(c.L, 0, 4)
            let fieldsRef = LuaRef(host: host)
            return c.push(LuaModule(className: name, classRef: classRef, fieldsRef: fieldsRef))
        }
    }
}
