// The Tensor userdata: methods in PyTorch's names, fields (shape, grad, requires_grad...),
// arithmetic metamethods, indexing and slicing.
//
// Conventions (docs/lua-api.md): dims and indices are 0-based and negative values count from the
// end, exactly like PyTorch; sizes and shapes are Lua arrays (so `x.shape[1]` is the size of
// dim 0 — a Lua table is still a Lua table). Keyword arguments of PyTorch become a trailing
// options table.
import CLua
import CLuaShim
import SSKDTensor

extension LuaCall {
    /// The tensor at `i` (argument error otherwise).
    public func tensor(_ i: Int32) throws -> Tensor {
        if let box = sskd_to_box(L, i), box.pointee.type == TensorBindings.typeID, let p = box.pointee.object {
            return Unmanaged<Tensor>.fromOpaque(p).takeUnretainedValue()
        }
        return try object(i, Tensor.self, expected: "Tensor")
    }
    public func optTensor(_ i: Int32) throws -> Tensor? { isNoneOrNil(i) ? nil : try tensor(i) }

    /// A list of tensors from the Lua array at `i`.
    public func tensors(_ i: Int32) throws -> [Tensor] {
        guard lua_type(L, i) == LUA_TTABLE else { throw argError(i, "table of tensors") }
        let n = Int(lua_rawlen(L, i))
        var out: [Tensor] = []
        for k in 0..<n {
            lua_rawgeti(L, i, lua_Integer(k + 1))
            defer { pop() }
            guard let t = toObject(-1, Tensor.self) else { throw argError(i, message: "entry \(k + 1) must be a Tensor, got \(typeName(-1))") }
            out.append(t)
        }
        return out
    }

    /// A tensor, or a number turned into a 0-d tensor.
    func tensorOrNumber(_ i: Int32) throws -> Tensor {
        if lua_type(L, i) == LUA_TNUMBER { return try Tensor.scalar(Float(lua_tonumberx(L, i, nil))) }
        if let t = toObject(i, Tensor.self) { return t }
        throw argError(i, "Tensor or number")
    }

    /// Pushes a tensor userdata; returns 1 (the result count).
    @discardableResult
    public func push(_ t: Tensor) -> Int32 {
        push(object: t, type: TensorBindings.typeID)
        return 1
    }
}

/// Builds a tensor from a number or nested Lua arrays (`torch.tensor{{1, 2}, {3, 4}}`).
func tensorFromLua(_ c: LuaCall, _ i: Int32) throws -> Tensor {
    if lua_type(c.L, i) == LUA_TNUMBER { return try Tensor.scalar(Float(lua_tonumberx(c.L, i, nil))) }
    if lua_type(c.L, i) == LUA_TBOOLEAN { return try Tensor.scalar(lua_toboolean(c.L, i) != 0 ? 1 : 0) }
    if let t = c.toObject(i, Tensor.self) { return try withNoGrad { try t.clone() }.detach() }
    guard lua_type(c.L, i) == LUA_TTABLE else { throw c.argError(i, "number, Tensor or nested table of numbers") }
    let L = c.L
    let root = lua_absindex(L, i)
    // The shape follows the first entry at each depth; every other entry must agree.
    var shape: [Int] = []
    try c.reserve(40)
    lua_pushvalue(L, root)
    while lua_type(L, -1) == LUA_TTABLE {
        guard shape.count < 32 else { c.pop(); throw LuaError("\(c.name): nested table is too deep (more than 32 levels)") }
        let n = Int(lua_rawlen(L, -1))
        shape.append(n)
        if n == 0 { break }
        lua_rawgeti(L, -1, 1)
        lua_rotate(L, -2, 1); c.pop()
    }
    c.pop()
    var values: [Float] = []
    values.reserveCapacity(shape.reduce(1, *))
    func fill(_ idx: Int32, depth: Int) throws {
        let n = Int(lua_rawlen(L, idx))
        guard n == shape[depth] else {
            throw LuaError("\(c.name): ragged nested table: expected \(shape[depth]) entries at depth \(depth + 1), got \(n)")
        }
        for k in 0..<n {
            let t = lua_rawgeti(L, idx, lua_Integer(k + 1))
            defer { c.pop() }
            let leaf = depth + 1 == shape.count
            switch t {
            case LUA_TNUMBER where leaf: values.append(Float(lua_tonumberx(L, -1, nil)))
            case LUA_TBOOLEAN where leaf: values.append(lua_toboolean(L, -1) != 0 ? 1 : 0)
            case LUA_TTABLE where !leaf: try fill(lua_gettop(L), depth: depth + 1)
            default:
                throw LuaError("\(c.name): ragged nested table: entry \(k + 1) at depth \(depth + 1) is \(c.typeName(-1)), expected \(leaf ? "a number" : "a table")")
            }
        }
    }
    try fill(root, depth: 0)
    guard values.count == shape.reduce(1, *) else { throw LuaError("\(c.name): ragged nested table (shape \(shape) but \(values.count) values)") }
    return try Tensor(values, shape: shape)
}

/// Pushes nested Lua arrays of a tensor's values (a number for a 0-d tensor).
func pushList(_ c: LuaCall, _ t: Tensor) throws {
    if t.dim == 0 { c.push(t.data[0]); return }
    try c.reserve(Int32(t.dim) + 4)
    func rec(_ d: Int, _ offset: Int) {
        let n = t.shape[d], stride = t.shape[(d + 1)...].reduce(1, *)
        lua_createtable(c.L, Int32(n), 0)
        for k in 0..<n {
            if d == t.dim - 1 { c.push(t.data[offset + k]) } else { rec(d + 1, offset + k * stride) }
            lua_rawseti(c.L, -2, lua_Integer(k + 1))
        }
    }
    rec(0, 0)
}

/// Elementwise comparison with broadcasting; 1 where `op` holds, else 0 (no gradient).
func compare(_ a: Tensor, _ b: Tensor, _ name: String, _ op: (Float, Float) -> Bool) throws -> Tensor {
    let shape = try broadcastShapes(a.shape, b.shape, op: name)
    return try withNoGrad {
        let x = a.shape == shape ? a : try a.expand(shape)
        let y = b.shape == shape ? b : try b.expand(shape)
        let out = try Tensor.zeros(shape)
        for i in 0..<out.count where op(x.data[i], y.data[i]) { out.data[i] = 1 }
        return out
    }
}

/// One dim's part of an index: a single position (the dim is removed) or a slice.
enum IndexSpec {
    case at(Int)
    case slice(start: Int?, end: Int?, step: Int)
    case all
}

/// Parses `"1:3"`, `":"`, `"::2"`, `"-2:"` (Python slice syntax) or `"3"`.
func parseSlice(_ s: String) -> IndexSpec? {
    let parts = s.split(separator: ":", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: " ") }
    if parts.count == 1 { return Int(parts[0]).map { .at($0) } }
    guard parts.count <= 3 else { return nil }
    func bound(_ p: String) -> Int?? { p.isEmpty ? .some(nil) : (Int(p).map { .some($0) } ?? nil) }
    guard let a = bound(parts[0]), let b = bound(parts[1]) else { return nil }
    var step = 1
    if parts.count == 3 && !parts[2].isEmpty { guard let s = Int(parts[2]) else { return nil }; step = s }
    return .slice(start: a, end: b, step: step)
}

extension String {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        var s = Substring(self)
        while s.first == set { s = s.dropFirst() }
        while s.last == set { s = s.dropLast() }
        return String(s)
    }
}
extension Substring {
    fileprivate func trimmingCharacters(in set: Character) -> String { String(self).trimmingCharacters(in: set) }
}

/// Reads the index key at stack position 2: an integer, a slice string, or a table with one
/// entry per dim (each an integer, a slice string, or `{start, stop[, step]}`).
func indexSpecs(_ c: LuaCall, _ key: Int32) throws -> [IndexSpec] {
    func one(_ i: Int32, _ what: String) throws -> IndexSpec {
        switch lua_type(c.L, i) {
        case LUA_TNUMBER:
            var v: lua_Integer = 0
            guard sskd_isinteger_value(c.L, i, &v) != 0 else { throw LuaError("\(c.name): index \(what) must be an integer, got a fractional number") }
            return .at(Int(v))
        case LUA_TSTRING:
            let s = c.stringValue(i) ?? ""
            guard let spec = parseSlice(s) else { throw LuaError("\(c.name): bad slice \"\(s)\" for \(what) (expected \"start:stop[:step]\", e.g. \"1:3\", \":\", \"::2\")") }
            return spec
        case LUA_TTABLE:
            var b: [Int?] = []
            for k in 1...3 {
                let t = lua_rawgeti(c.L, i, lua_Integer(k))
                defer { c.pop() }
                var v: lua_Integer = 0
                if t == LUA_TNIL { b.append(nil); continue }
                guard t == LUA_TNUMBER, sskd_isinteger_value(c.L, -1, &v) != 0 else { throw LuaError("\(c.name): slice {start, stop, step} for \(what) must hold integers, entry \(k) is \(c.typeName(-1))") }
                b.append(Int(v))
            }
            if b.allSatisfy({ $0 == nil }) { return .all }
            return .slice(start: b[0], end: b[1], step: b[2] ?? 1)
        default:
            throw LuaError("\(c.name): bad index \(what) (integer, slice string or {start, stop, step} expected, got \(c.typeName(i)))")
        }
    }
    if lua_type(c.L, key) == LUA_TTABLE {
        let n = Int(lua_rawlen(c.L, key))
        guard n > 0 else { return [] }
        var out: [IndexSpec] = []
        for k in 1...n {
            lua_rawgeti(c.L, key, lua_Integer(k))
            defer { c.pop() }
            out.append(try one(lua_gettop(c.L), "for dim \(k - 1)"))
        }
        return out
    }
    return [try one(key, "")]
}

/// Applies index specs with autograd (slices copy; selected dims are removed).
func applyIndex(_ x: Tensor, _ specs: [IndexSpec]) throws -> Tensor {
    guard specs.count <= x.dim else { throw TensorError("index", "too many indices for tensor of dimension \(x.dim) (got \(specs.count))") }
    var t = x
    var d = 0
    for s in specs {
        switch s {
        case .all: d += 1
        case let .slice(start, end, step):
            guard step > 0 else { throw TensorError("index", "slice step must be positive, got \(step)") }
            if !(start == nil && end == nil && step == 1) { t = try t.slice(d, start: start, end: end, step: step) }
            d += 1
        case let .at(i):
            let n = t.shape[d]
            guard i >= -n && i < n else { throw TensorError("index", "index \(i) is out of bounds for dim \(d) with size \(n)") }
            var shape = t.shape; shape.remove(at: d)
            t = try t.narrow(d, start: i < 0 ? i + n : i, length: 1).reshape(shape)
        }
    }
    return t
}

/// Flat offsets and the result shape selected by specs (for assignment).
func indexOffsets(_ shape: [Int], _ specs: [IndexSpec]) throws -> (offsets: [Int], shape: [Int]) {
    guard specs.count <= shape.count else { throw TensorError("index", "too many indices for tensor of dimension \(shape.count) (got \(specs.count))") }
    var lists: [[Int]] = []
    var outShape: [Int] = []
    for (d, n) in shape.enumerated() {
        let s: IndexSpec = d < specs.count ? specs[d] : .all
        switch s {
        case .all: lists.append(Array(0..<n)); outShape.append(n)
        case let .slice(start, end, step):
            guard step > 0 else { throw TensorError("index", "slice step must be positive, got \(step)") }
            func clampIndex(_ v: Int?, _ dflt: Int) -> Int {
                guard var v else { return dflt }
                if v < 0 { v += n }
                return min(max(v, 0), n)
            }
            let lo = clampIndex(start, 0), hi = clampIndex(end, n)
            let l = lo < hi ? Array(stride(from: lo, to: hi, by: step)) : []
            lists.append(l); outShape.append(l.count)
        case let .at(i):
            guard i >= -n && i < n else { throw TensorError("index", "index \(i) is out of bounds for dim \(d) with size \(n)") }
            lists.append([i < 0 ? i + n : i])
        }
    }
    let strides = shape.indices.map { shape[($0 + 1)...].reduce(1, *) }
    var offsets = [0]
    for (d, l) in lists.enumerated() {
        var next: [Int] = []
        next.reserveCapacity(offsets.count * l.count)
        for o in offsets { for i in l { next.append(o + i * strides[d]) } }
        offsets = next
    }
    return (offsets, outShape)
}

/// Refuses in-place writes that would silently break autograd.
func checkInPlace(_ t: Tensor, _ op: String) throws {
    if GradMode.isEnabled && t.requiresGrad {
        throw TensorError(op, "a tensor that requires grad is being used in an in-place operation; wrap it in torch.no_grad(function() ... end)")
    }
}

enum TensorBindings {
    nonisolated(unsafe) static var typeID: Int32 = 0
    nonisolated(unsafe) static var type: LuaType!

    static func register() {
        let T = LuaTypes.register(Tensor.self, name: "Tensor",
            doc: "An n-dimensional float32 tensor with autograd. Dims and indices are 0-based (negative counts from the end). Create with torch.zeros/ones/rand/randn/tensor/arange.")
        typeID = T.type.id
        type = T.type
        T.tostring { $0.description }

        // MARK: fields
        T.field("shape", "sizes as a Lua array, e.g. {2, 3} (x.shape[1] is the size of dim 0)") { c, x in c.push(ints: x.shape); return 1 }
        T.field("ndim", "number of dims") { c, x in c.push(x.dim); return 1 }
        T.field("grad", "accumulated gradient after backward() (nil if none); assign nil to clear", get: { c, x in
            if let g = x.grad { c.push(g) } else { c.pushNil() }
            return 1
        }, set: { c, x in
            if c.isNoneOrNil(3) { x.grad = nil; return }
            let g = try c.tensor(3)
            guard g.shape == x.shape else { throw LuaError("\(c.name): gradient shape \(g.shape) does not match tensor shape \(x.shape)") }
            x.grad = g
        })
        T.field("requires_grad", "whether gradients flow to this tensor (assignable on leaves)", get: { c, x in c.push(x.requiresGrad); return 1 }, set: { c, x in
            let flag = try c.bool(3)
            guard x.isLeaf || flag else { throw LuaError("\(c.name): you can only change requires_grad of leaf tensors; use x:detach()") }
            x.requiresGrad = flag
        })
        T.field("is_leaf", "true unless the tensor was produced by a recorded op") { c, x in c.push(x.isLeaf); return 1 }
        T.field("grad_fn", "name of the op that produced the tensor (nil for leaves)") { c, x in
            if let f = x.gradFn { c.pushString(f.name) } else { c.pushNil() }
            return 1
        }
        T.field("data", "the tensor detached from the graph (shares storage)") { c, x in c.push(x.detach()) }
        T.field("T", "dims reversed (the transpose of a matrix)") { c, x in c.push(try x.permute(Array((0..<x.dim).reversed()))) }

        // MARK: indexing
        T.index { c, x in c.push(try applyIndex(x, try indexSpecs(c, 2))) }
        T.newIndex { c, x in
            try checkInPlace(x, "index assignment")
            let (offsets, shape) = try indexOffsets(x.shape, try indexSpecs(c, 2))
            if lua_type(c.L, 3) == LUA_TNUMBER {
                let v = Float(lua_tonumberx(c.L, 3, nil))
                for o in offsets { x.data[o] = v }
                return
            }
            guard let src = c.toObject(3, Tensor.self) else { throw c.argError(3, "Tensor or number (value to assign)") }
            let s = src.shape == shape ? src : try withNoGrad { try src.expand(shape) }
            guard s.count == offsets.count else { throw TensorError("index assignment", "shape mismatch: value of shape \(src.shape) cannot be assigned to a region of shape \(shape)") }
            for (k, o) in offsets.enumerated() { x.data[o] = s.data[k] }
        }

        // MARK: metamethods
        func binary(_ event: String, _ tt: @escaping (Tensor, Tensor) throws -> Tensor,
                    _ ts: @escaping (Tensor, Float) throws -> Tensor, _ st: @escaping (Float, Tensor) throws -> Tensor) {
            T.meta(event) { c in
                let a = c.toObject(1, Tensor.self), b = c.toObject(2, Tensor.self)
                if let a, let b { return c.push(try tt(a, b)) }
                if let a {
                    guard lua_type(c.L, 2) == LUA_TNUMBER else { throw c.argError(2, "Tensor or number") }
                    return c.push(try ts(a, Float(lua_tonumberx(c.L, 2, nil))))
                }
                guard let b else { throw c.argError(1, "Tensor") }
                guard lua_type(c.L, 1) == LUA_TNUMBER else { throw c.argError(1, "Tensor or number") }
                return c.push(try st(Float(lua_tonumberx(c.L, 1, nil)), b))
            }
        }
        binary("__add", { try $0.add($1) }, { try $0.add($1) }, { try $1.add($0) })
        binary("__sub", { try $0.sub($1) }, { try $0.sub($1) }, { try $1.rsub($0) })
        binary("__mul", { try $0.mul($1) }, { try $0.mul($1) }, { try $1.mul($0) })
        binary("__div", { try $0.div($1) }, { try $0.div($1) }, { try $1.rdiv($0) })
        binary("__pow", { try $0.pow($1) }, { try $0.pow($1) }, { try Tensor.scalar($0).pow($1) })
        T.meta("__unm") { c in c.push(try c.tensor(1).neg()) }
        T.meta("__len") { c in
            let x = try c.tensor(1)
            guard x.dim > 0 else { throw LuaError("len() of a 0-d tensor") }
            c.push(x.shape[0]); return 1
        }
        T.meta("__concat") { _ in throw LuaError("attempt to concatenate a Tensor (use torch.cat, or tostring(x))") }
        T.meta("__lt") { _ in throw LuaError("attempt to compare Tensors with '<' (use x:lt(y), which is elementwise)") }
        T.meta("__le") { _ in throw LuaError("attempt to compare Tensors with '<=' (use x:le(y), which is elementwise)") }

        // MARK: arithmetic
        func elementwise(_ name: String, _ summary: String, _ f: @escaping (Tensor) throws -> Tensor) {
            T.method(name, "x:\(name)() -> Tensor", summary) { c, x in c.push(try f(x)) }
        }
        func withOther(_ name: String, _ summary: String, _ tt: @escaping (Tensor, Tensor) throws -> Tensor, _ ts: @escaping (Tensor, Float) throws -> Tensor) {
            T.method(name, "x:\(name)(other) -> Tensor", summary) { c, x in
                if lua_type(c.L, 2) == LUA_TNUMBER { return c.push(try ts(x, Float(lua_tonumberx(c.L, 2, nil)))) }
                guard let o = c.toObject(2, Tensor.self) else { throw c.argError(2, "Tensor or number") }
                return c.push(try tt(x, o))
            }
        }
        withOther("add", "x + other (broadcasting)", { try $0.add($1) }, { try $0.add($1) })
        withOther("sub", "x - other (broadcasting)", { try $0.sub($1) }, { try $0.sub($1) })
        withOther("mul", "x * other (broadcasting)", { try $0.mul($1) }, { try $0.mul($1) })
        withOther("div", "x / other (broadcasting)", { try $0.div($1) }, { try $0.div($1) })
        withOther("pow", "x ^ exponent (tensor or number)", { try $0.pow($1) }, { try $0.pow($1) })
        elementwise("neg", "-x") { try $0.neg() }
        elementwise("exp", "e^x") { try $0.exp() }
        elementwise("log", "natural logarithm") { try $0.log() }
        elementwise("sqrt", "square root") { try $0.sqrt() }
        elementwise("abs", "absolute value") { try $0.abs() }
        elementwise("sigmoid", "1 / (1 + e^-x)") { try $0.sigmoid() }
        elementwise("tanh", "hyperbolic tangent") { try $0.tanh() }
        elementwise("relu", "max(x, 0)") { try $0.relu() }
        elementwise("relu6", "min(max(x, 0), 6)") { try $0.relu6() }
        elementwise("silu", "x * sigmoid(x)") { try $0.silu() }
        elementwise("hardswish", "x * relu6(x + 3) / 6") { try $0.hardswish() }
        elementwise("hardsigmoid", "relu6(x + 3) / 6") { try $0.hardsigmoid() }
        T.method("clamp", "x:clamp(min, max) or x:clamp{min=, max=} -> Tensor", "limits values to [min, max] (either may be nil)") { c, x in
            if lua_type(c.L, 2) == LUA_TTABLE {
                let o = try c.options(2)
                let lo = try o.float("min"), hi = try o.float("max")
                try o.finish()
                return c.push(try x.clamp(min: lo, max: hi))
            }
            return c.push(try x.clamp(min: try c.optFloat(2), max: try c.optFloat(3)))
        }
        func comparison(_ name: String, _ op: @escaping (Float, Float) -> Bool) {
            T.method(name, "x:\(name)(other) -> Tensor", "elementwise \(name) (1 where true, else 0; no gradient)") { c, x in
                c.push(try compare(x, try c.tensorOrNumber(2), name, op))
            }
        }
        comparison("eq") { $0 == $1 }
        comparison("ne") { $0 != $1 }
        comparison("lt") { $0 < $1 }
        comparison("le") { $0 <= $1 }
        comparison("gt") { $0 > $1 }
        comparison("ge") { $0 >= $1 }
        T.method("matmul", "x:matmul(other) -> Tensor", "matrix product with batch broadcasting, like torch.matmul") { c, x in c.push(try x.matmul(try c.tensor(2))) }
        T.method("mm", "x:mm(other) -> Tensor", "matrix product (same as matmul)") { c, x in c.push(try x.matmul(try c.tensor(2))) }

        // MARK: reductions
        /// dims at 2 (nil, an integer or a table), keepdim at 3 (boolean or {keepdim=}).
        func reduceArgs(_ c: LuaCall) throws -> ([Int], Bool) {
            var dims: [Int] = []
            if lua_type(c.L, 2) == LUA_TTABLE { dims = try c.intArray(2, what: "dims") } else if !c.isNoneOrNil(2) { dims = [try c.int(2)] }
            var keep = false
            if lua_type(c.L, 3) == LUA_TTABLE {
                let o = try c.options(3); keep = try o.bool("keepdim", default: false); try o.finish()
            } else { keep = try c.optBool(3) ?? false }
            return (dims, keep)
        }
        T.method("sum", "x:sum([dim [, keepdim]]) -> Tensor", "sum over dim (an integer or a table of dims; all when nil)") { c, x in
            let (d, k) = try reduceArgs(c); return c.push(try x.sum(d, keepdim: k))
        }
        T.method("mean", "x:mean([dim [, keepdim]]) -> Tensor", "mean over dim (an integer or a table of dims; all when nil)") { c, x in
            let (d, k) = try reduceArgs(c); return c.push(try x.mean(d, keepdim: k))
        }
        T.method("var", "x:var([dim [, {correction=1, keepdim=false}]]) -> Tensor", "variance (unbiased by default)") { c, x in
            var dims: [Int] = []
            if lua_type(c.L, 2) == LUA_TTABLE { dims = try c.intArray(2, what: "dims") } else if !c.isNoneOrNil(2) { dims = [try c.int(2)] }
            let o = try c.options(3)
            let corr = try o.int("correction", default: 1), keep = try o.bool("keepdim", default: false)
            try o.finish()
            return c.push(try x.variance(dims, correction: corr, keepdim: keep))
        }
        T.method("std", "x:std([dim [, {correction=1, keepdim=false}]]) -> Tensor", "standard deviation (unbiased by default)") { c, x in
            var dims: [Int] = []
            if lua_type(c.L, 2) == LUA_TTABLE { dims = try c.intArray(2, what: "dims") } else if !c.isNoneOrNil(2) { dims = [try c.int(2)] }
            let o = try c.options(3)
            let corr = try o.int("correction", default: 1), keep = try o.bool("keepdim", default: false)
            try o.finish()
            return c.push(try x.variance(dims, correction: corr, keepdim: keep).sqrt())
        }
        func extreme(_ name: String, _ isMax: Bool) {
            T.method(name, "x:\(name)([dim [, keepdim]]) -> Tensor [, indices]",
                     "\(name)imum of all values; with dim, returns values and indices along dim (like torch.\(name))") { c, x in
                if c.isNoneOrNil(2) { return c.push(isMax ? try x.max() : try x.min()) }
                let d = try c.int(2)
                let k: Bool
                if lua_type(c.L, 3) == LUA_TTABLE { let o = try c.options(3); k = try o.bool("keepdim", default: false); try o.finish() } else { k = try c.optBool(3) ?? false }
                c.push(isMax ? try x.max(d, keepdim: k) : try x.min(d, keepdim: k))
                c.push(isMax ? try x.argmax(d, keepdim: k) : try x.argmin(d, keepdim: k))
                return 2
            }
        }
        extreme("max", true)
        extreme("min", false)
        T.method("amax", "x:amax([dim [, keepdim]]) -> Tensor", "maximum over dim (an integer or a table of dims)") { c, x in
            let (d, k) = try reduceArgs(c); return c.push(try x.max(d, keepdim: k))
        }
        T.method("amin", "x:amin([dim [, keepdim]]) -> Tensor", "minimum over dim (an integer or a table of dims)") { c, x in
            let (d, k) = try reduceArgs(c); return c.push(try x.min(d, keepdim: k))
        }
        T.method("argmax", "x:argmax([dim [, keepdim]]) -> Tensor", "0-based index of the maximum (of the flattened tensor when dim is nil)") { c, x in
            c.push(try x.argmax(try c.optInt(2), keepdim: try c.optBool(3) ?? false))
        }
        T.method("argmin", "x:argmin([dim [, keepdim]]) -> Tensor", "0-based index of the minimum") { c, x in
            c.push(try x.argmin(try c.optInt(2), keepdim: try c.optBool(3) ?? false))
        }
        T.method("logsumexp", "x:logsumexp(dim [, keepdim]) -> Tensor", "log(sum(exp(x))) over dim, computed stably") { c, x in
            let (d, k) = try reduceArgs(c)
            guard !d.isEmpty else { throw c.argError(2, "integer or table of dims") }
            return c.push(try x.logsumexp(d, keepdim: k))
        }
        T.method("softmax", "x:softmax(dim) -> Tensor", "softmax along dim") { c, x in c.push(try x.softmax(try c.int(2))) }
        T.method("log_softmax", "x:log_softmax(dim) -> Tensor", "log of softmax along dim (stable)") { c, x in c.push(try x.logSoftmax(try c.int(2))) }

        // MARK: shape
        T.method("reshape", "x:reshape(size...) or x:reshape{size} -> Tensor", "view with a new shape (one size may be -1)") { c, x in c.push(try x.reshape(try c.ints(from: 2))) }
        T.method("view", "x:view(size...) or x:view{size} -> Tensor", "same as reshape (storage is always contiguous)") { c, x in c.push(try x.view(try c.ints(from: 2))) }
        T.method("flatten", "x:flatten([start_dim [, end_dim]]) -> Tensor", "flattens dims start..end (default all) into one") { c, x in
            c.push(try x.flatten(start: try c.int(2, default: 0), end: try c.int(3, default: -1)))
        }
        T.method("unsqueeze", "x:unsqueeze(dim) -> Tensor", "inserts a dim of size 1") { c, x in c.push(try x.unsqueeze(try c.int(2))) }
        T.method("squeeze", "x:squeeze([dim]) -> Tensor", "removes dim (or every dim) of size 1") { c, x in c.push(try x.squeeze(try c.optInt(2))) }
        T.method("permute", "x:permute(dims...) or x:permute{dims} -> Tensor", "reorders dims") { c, x in c.push(try x.permute(try c.ints(from: 2, what: "dims"))) }
        T.method("transpose", "x:transpose(dim0, dim1) -> Tensor", "swaps two dims") { c, x in c.push(try x.transpose(try c.int(2), try c.int(3))) }
        T.method("t", "x:t() -> Tensor", "transpose of a tensor with <= 2 dims") { c, x in c.push(try x.t()) }
        T.method("contiguous", "x:contiguous() -> Tensor", "x itself (storage is always contiguous)") { c, x in c.push(x.contiguous()) }
        T.method("expand", "x:expand(size...) or x:expand{size} -> Tensor", "broadcasts to a larger shape (-1 keeps a dim)") { c, x in c.push(try x.expand(try c.ints(from: 2))) }
        T.method("narrow", "x:narrow(dim, start, length) -> Tensor", "length entries of dim from start") { c, x in
            c.push(try x.narrow(try c.int(2), start: try c.int(3), length: try c.int(4)))
        }
        T.method("select", "x:select(dim, index) -> Tensor", "the slice at index along dim, with that dim removed") { c, x in
            let d = try c.int(2), i = try c.int(3)
            guard x.dim > 0 else { throw TensorError("select", "cannot select on a 0-d tensor") }
            let a = d < 0 ? d + x.dim : d
            guard a >= 0 && a < x.dim else { throw TensorError("select", "dim \(d) out of range for a tensor of \(x.dim) dims") }
            var specs = [IndexSpec](repeating: .all, count: a); specs.append(.at(i))
            return c.push(try applyIndex(x, specs))
        }
        T.method("slice", "x:slice(dim, start, stop [, step]) -> Tensor", "Python-style start:stop:step of dim (nil bounds allowed)") { c, x in
            c.push(try x.slice(try c.int(2), start: try c.optInt(3), end: try c.optInt(4), step: try c.int(5, default: 1)))
        }
        T.method("index_select", "x:index_select(dim, indices) -> Tensor", "entries at indices (a table or a tensor of 0-based indices) along dim") { c, x in
            let idx: [Int]
            if let t = c.toObject(3, Tensor.self) {
                idx = try (0..<t.count).map { k in
                    let v = t.data[k]
                    guard v == v.rounded(), abs(v) < 1e15 else { throw TensorError("index_select", "index \(v) is not an integer") }
                    return Int(v)
                }
            } else { idx = try c.intArray(3, what: "indices") }
            return c.push(try x.indexSelect(try c.int(2), idx))
        }
        T.method("gather", "x:gather(dim, index) -> Tensor", "values picked along dim by an index tensor, like torch.gather") { c, x in
            c.push(try x.gather(try c.int(2), try c.tensor(3)))
        }

        // MARK: autograd
        T.method("backward", "x:backward([gradient] [, {retain_graph=false}])", "backpropagates, accumulating .grad on leaves that require grad") { c, x in
            var g: Tensor? = nil
            var optIndex: Int32 = 2
            if let t = c.toObject(2, Tensor.self) { g = t; optIndex = 3 } else if lua_type(c.L, 2) != LUA_TTABLE && !c.isNoneOrNil(2) { throw c.argError(2, "Tensor or options table") }
            let o = try c.options(optIndex)
            let retain = try o.bool("retain_graph", default: false)
            try o.finish()
            try x.backward(g, retainGraph: retain)
            return 0
        }
        T.method("detach", "x:detach() -> Tensor", "the same values cut from the graph (shares storage)") { c, x in c.push(x.detach()) }
        T.method("requires_grad_", "x:requires_grad_([flag=true]) -> x", "sets requires_grad on a leaf and returns x") { c, x in
            let flag = try c.optBool(2) ?? true
            guard x.isLeaf || flag else { throw LuaError("\(c.name): you can only change requires_grad of leaf tensors; use x:detach()") }
            x.requiresGrad = flag
            c.pushValue(1); return 1
        }
        T.method("zero_grad", "x:zero_grad()", "clears .grad") { _, x in x.zeroGrad(); return 0 }
        T.method("clone", "x:clone() -> Tensor", "a copy with its own storage (recorded for autograd)") { c, x in c.push(try x.clone()) }

        // MARK: values
        T.method("item", "x:item() -> number", "the value of a one-element tensor") { c, x in c.push(try x.item()); return 1 }
        T.method("tolist", "x:tolist() -> table", "nested Lua arrays of the values (a number for a 0-d tensor)") { c, x in try pushList(c, x); return 1 }
        T.method("numel", "x:numel() -> integer", "number of elements") { c, x in c.push(x.count); return 1 }
        T.method("dim", "x:dim() -> integer", "number of dims") { c, x in c.push(x.dim); return 1 }
        T.method("size", "x:size([dim]) -> integer or table", "size of dim (0-based), or all sizes as a Lua array") { c, x in
            if c.isNoneOrNil(2) { c.push(ints: x.shape); return 1 }
            c.push(try x.size(try c.int(2))); return 1
        }
        T.method("float", "x:float() -> Tensor", "x itself (tensors are always float32)") { c, _ in c.pushValue(1); return 1 }
        T.method("fill_", "x:fill_(value) -> x", "fills x in place (not recorded for autograd)") { c, x in
            let v = try c.float(2)
            try checkInPlace(x, "fill_")
            x.fill_(v); c.pushValue(1); return 1
        }
        T.method("zero_", "x:zero_() -> x", "fills x with zeros in place") { c, x in
            try checkInPlace(x, "zero_")
            x.fill_(0); c.pushValue(1); return 1
        }
        T.method("copy_", "x:copy_(src) -> x", "copies src's values (same shape) into x in place") { c, x in
            let s = try c.tensor(2)
            try checkInPlace(x, "copy_")
            try x.copy_(from: s); c.pushValue(1); return 1
        }
        func inPlace(_ name: String, _ summary: String, _ f: @escaping (Tensor, Tensor) throws -> Tensor) {
            T.method(name, "x:\(name)(other) -> x", summary) { c, x in
                let o = try c.tensorOrNumber(2)
                try checkInPlace(x, name)
                let r = try withNoGrad { try f(x, o) }
                guard r.shape == x.shape else { throw TensorError(name, "result shape \(r.shape) does not match the tensor's shape \(x.shape) (in-place ops cannot broadcast x)") }
                try x.copy_(from: r); c.pushValue(1); return 1
            }
        }
        inPlace("add_", "x += other in place (not recorded for autograd)") { try $0.add($1) }
        inPlace("sub_", "x -= other in place") { try $0.sub($1) }
        inPlace("mul_", "x *= other in place") { try $0.mul($1) }
        inPlace("div_", "x /= other in place") { try $0.div($1) }
    }
}
