#if canImport(Glibc)
import Glibc
#endif

// Elementwise arithmetic (NumPy broadcasting) and unary math, each with its gradient.
// Gradients of broadcast operands are summed back to the operand's shape.

extension Tensor {
    public func add(_ other: Tensor) throws -> Tensor {
        let out = try broadcastBinary(self, other, op: "add", +)
        return record(out, "add", [self, other]) { [a = self, b = other] g in
            [a.requiresGrad ? try a.reduceGrad(g) : nil, b.requiresGrad ? try b.reduceGrad(g) : nil]
        }
    }

    public func sub(_ other: Tensor) throws -> Tensor {
        let out = try broadcastBinary(self, other, op: "sub", -)
        return record(out, "sub", [self, other]) { [a = self, b = other] g in
            [a.requiresGrad ? try a.reduceGrad(g) : nil, b.requiresGrad ? try b.reduceGrad(try unaryMap(g) { -$0 }) : nil]
        }
    }

    public func mul(_ other: Tensor) throws -> Tensor {
        let out = try broadcastBinary(self, other, op: "mul", *)
        return record(out, "mul", [self, other]) { [a = self, b = other] g in
            [a.requiresGrad ? try a.reduceGrad(broadcastBinary(g, b, op: "mul", *)) : nil,
             b.requiresGrad ? try b.reduceGrad(broadcastBinary(g, a, op: "mul", *)) : nil]
        }
    }

    public func div(_ other: Tensor) throws -> Tensor {
        let out = try broadcastBinary(self, other, op: "div", /)
        // Closures capture a detached alias of `out`, never `out` itself: out -> node -> closure
        // -> out would be a reference cycle that leaks every graph that is not backpropagated.
        return record(out, "div", [self, other]) { [a = self, b = other, out = out.detach()] g in
            // d(a/b)/da = 1/b ; d(a/b)/db = -a/b^2 = -out/b
            [a.requiresGrad ? try a.reduceGrad(broadcastBinary(g, b, op: "div", /)) : nil,
             b.requiresGrad ? try b.reduceGrad(broadcastBinary(broadcastBinary(g, out, op: "mul", *), b, op: "div") { -$0 / $1 }) : nil]
        }
    }

    /// self ^ other elementwise with broadcasting.
    public func pow(_ other: Tensor) throws -> Tensor {
        let out = try broadcastBinary(self, other, op: "pow") { scalarPow($0, $1) }
        return record(out, "pow", [self, other]) { [a = self, b = other, out = out.detach()] g in
            var ga: Tensor? = nil, gb: Tensor? = nil
            if a.requiresGrad {
                // b * a^(b-1)
                let d = try broadcastBinary(a, b, op: "pow") { x, y in y == 0 ? 0 : y * scalarPow(x, y - 1) }
                ga = try a.reduceGrad(broadcastBinary(g, d, op: "mul", *))
            }
            if b.requiresGrad {
                // a^b * log(a), taken as 0 where a == 0 and b >= 0 (PyTorch's convention)
                let la = try unaryMap(a) { $0 == 0 ? 0 : logf($0) }
                let d = try broadcastBinary(out, la, op: "mul", *)
                gb = try b.reduceGrad(broadcastBinary(g, d, op: "mul", *))
            }
            return [ga, gb]
        }
    }

    /// self ^ exponent.
    public func pow(_ exponent: Float) throws -> Tensor {
        let e = exponent
        let out: Tensor
        if e == 2 { out = try unaryMap(self) { $0 * $0 } }
        else if e == 0.5 { out = try unaryMap(self) { $0.squareRoot() } }
        else { out = try unaryMap(self) { scalarPow($0, e) } }
        return record(out, "pow", [self], attributes: ["exponent": .float(e)]) { [a = self] g in
            if e == 0 { return [try Tensor.zeros(like: a)] }
            if e == 2 { return [try zipMap(g, a) { $0 * 2 * $1 }] }
            return [try zipMap(g, a) { gg, x in gg * e * scalarPow(x, e - 1) }]
        }
    }

    public func neg() throws -> Tensor {
        let out = try unaryMap(self) { -$0 }
        return record(out, "neg", [self]) { g in [try unaryMap(g) { -$0 }] }
    }

    public func exp() throws -> Tensor {
        let out = try unaryMap(self) { expf($0) }
        return record(out, "exp", [self]) { [out = out.detach()] g in [try zipMap(g, out, *)] }
    }

    public func log() throws -> Tensor {
        let out = try unaryMap(self) { logf($0) }
        return record(out, "log", [self]) { [a = self] g in [try zipMap(g, a, /)] }
    }

    /// log(1 + x), accurate for small x.
    public func log1p() throws -> Tensor {
        let out = try unaryMap(self) { log1pf($0) }
        return record(out, "log1p", [self]) { [a = self] g in [try zipMap(g, a) { $0 / (1 + $1) }] }
    }

    /// x * x.
    public func square() throws -> Tensor {
        let out = try unaryMap(self) { $0 * $0 }
        return record(out, "square", [self]) { [a = self] g in [try zipMap(g, a) { $0 * 2 * $1 }] }
    }

    public func sqrt() throws -> Tensor {
        let out = try unaryMap(self) { $0.squareRoot() }
        return record(out, "sqrt", [self]) { [out = out.detach()] g in [try zipMap(g, out) { $0 / (2 * $1) }] }
    }

    public func abs() throws -> Tensor {
        let out = try unaryMap(self) { Swift.abs($0) }
        // sign(x), 0 at 0 like PyTorch
        return record(out, "abs", [self]) { [a = self] g in [try zipMap(g, a) { gg, x in x > 0 ? gg : (x < 0 ? -gg : 0) }] }
    }

    public func sigmoid() throws -> Tensor {
        // 8 lanes at a time through the vector exp of Kernels/Activations.swift.
        let out = try Tensor(shape, zeroed: false)
        sigmoidForward(out.data, data, count: count)
        return record(out, "sigmoid", [self]) { [out = out.detach()] g in [try zipMap(g, out) { gg, s in gg * s * (1 - s) }] }
    }

    public func tanh() throws -> Tensor {
        let out = try unaryMap(self) { tanhf($0) }
        return record(out, "tanh", [self]) { [out = out.detach()] g in [try zipMap(g, out) { gg, t in gg * (1 - t * t) }] }
    }

    public func relu() throws -> Tensor {
        let out = try unaryMap(self) { $0 > 0 ? $0 : 0 }
        return record(out, "relu", [self]) { [out = out.detach()] g in [try zipMap(g, out) { gg, y in y > 0 ? gg : 0 }] }
    }

    /// Clamps to [min, max] (either bound may be nil). The gradient passes where min <= x <= max.
    public func clamp(min lo: Float? = nil, max hi: Float? = nil) throws -> Tensor {
        guard lo != nil || hi != nil else { throw TensorError("clamp", "at least one of min and max must be given") }
        if let lo, lo.isNaN { throw TensorError("clamp", "min is NaN") }
        if let hi, hi.isNaN { throw TensorError("clamp", "max is NaN") }
        let l = lo ?? -.infinity, h = hi ?? .infinity
        let out = try unaryMap(self) { x in Swift.min(Swift.max(x, l), h) }
        return record(out, "clamp", [self], attributes: ["min": .float(l), "max": .float(h)]) { [a = self] g in [try zipMap(g, a) { gg, x in (x >= l && x <= h) ? gg : 0 }] }
    }

    // Scalar conveniences (the scalar is a constant).
    public func add(_ s: Float) throws -> Tensor {
        let out = try unaryMap(self) { $0 + s }
        return record(out, "add", [self], attributes: ["other": .float(s)]) { g in [g] }
    }
    public func mul(_ s: Float) throws -> Tensor {
        let out = try unaryMap(self) { $0 * s }
        return record(out, "mul", [self], attributes: ["other": .float(s)]) { g in [try unaryMap(g) { $0 * s }] }
    }
    public func sub(_ s: Float) throws -> Tensor { try add(-s) }
    /// self / s, a true division (so x / 0 is +-inf or nan, as in PyTorch).
    public func div(_ s: Float) throws -> Tensor {
        let out = try unaryMap(self) { $0 / s }
        return record(out, "div", [self], attributes: ["other": .float(s)]) { g in [try unaryMap(g) { $0 / s }] }
    }
    /// s - self
    public func rsub(_ s: Float) throws -> Tensor {
        let out = try unaryMap(self) { s - $0 }
        return record(out, "rsub", [self], attributes: ["other": .float(s)]) { g in [try unaryMap(g) { -$0 }] }
    }
    /// s / self
    public func rdiv(_ s: Float) throws -> Tensor {
        let out = try unaryMap(self) { s / $0 }
        return record(out, "rdiv", [self], attributes: ["other": .float(s)]) { [a = self] g in [try zipMap(g, a) { gg, x in -gg * s / (x * x) }] }
    }
}

// MARK: - Elementwise maximum/minimum, comparisons, where

extension Tensor {
    /// Elementwise maximum with broadcasting, like `torch.maximum`. Where the two are equal the
    /// gradient is split evenly between them (PyTorch's convention).
    public func maximum(_ other: Tensor) throws -> Tensor { try extremum(other, isMax: true) }

    /// Elementwise minimum with broadcasting, like `torch.minimum`.
    public func minimum(_ other: Tensor) throws -> Tensor { try extremum(other, isMax: false) }

    private func extremum(_ other: Tensor, isMax: Bool) throws -> Tensor {
        let name = isMax ? "maximum" : "minimum"
        // NaN propagates from either side.
        let out = try broadcastBinary(self, other, op: name) { x, y in
            x.isNaN || y.isNaN ? .nan : (isMax ? Swift.max(x, y) : Swift.min(x, y))
        }
        return record(out, name, [self, other]) { [a = self, b = other] g in
            // Weight of `a` in the result: 1 where a wins, 0.5 on ties, 0 where b wins.
            let wa = try broadcastBinary(a, b, op: name) { x, y in x == y ? 0.5 : ((isMax ? x > y : x < y) ? 1 : 0) }
            return [a.requiresGrad ? try a.reduceGrad(broadcastBinary(g, wa, op: name, *)) : nil,
                    b.requiresGrad ? try b.reduceGrad(broadcastBinary(g, wa, op: name) { gg, w in gg * (1 - w) }) : nil]
        }
    }

    /// 1 where `self == other` (broadcast), else 0. Not differentiable (no graph is recorded).
    public func eq(_ other: Tensor) throws -> Tensor { try broadcastBinary(self, other, op: "eq") { $0 == $1 ? 1 : 0 } }
    /// 1 where `self != other`, else 0.
    public func ne(_ other: Tensor) throws -> Tensor { try broadcastBinary(self, other, op: "ne") { $0 != $1 ? 1 : 0 } }
    /// 1 where `self > other`, else 0.
    public func gt(_ other: Tensor) throws -> Tensor { try broadcastBinary(self, other, op: "gt") { $0 > $1 ? 1 : 0 } }
    /// 1 where `self >= other`, else 0.
    public func ge(_ other: Tensor) throws -> Tensor { try broadcastBinary(self, other, op: "ge") { $0 >= $1 ? 1 : 0 } }
    /// 1 where `self < other`, else 0.
    public func lt(_ other: Tensor) throws -> Tensor { try broadcastBinary(self, other, op: "lt") { $0 < $1 ? 1 : 0 } }
    /// 1 where `self <= other`, else 0.
    public func le(_ other: Tensor) throws -> Tensor { try broadcastBinary(self, other, op: "le") { $0 <= $1 ? 1 : 0 } }

    public func eq(_ s: Float) throws -> Tensor { try unaryMap(self) { $0 == s ? 1 : 0 } }
    public func ne(_ s: Float) throws -> Tensor { try unaryMap(self) { $0 != s ? 1 : 0 } }
    public func gt(_ s: Float) throws -> Tensor { try unaryMap(self) { $0 > s ? 1 : 0 } }
    public func ge(_ s: Float) throws -> Tensor { try unaryMap(self) { $0 >= s ? 1 : 0 } }
    public func lt(_ s: Float) throws -> Tensor { try unaryMap(self) { $0 < s ? 1 : 0 } }
    public func le(_ s: Float) throws -> Tensor { try unaryMap(self) { $0 <= s ? 1 : 0 } }

    /// Whether `|self - other| <= atol + rtol * |other|` everywhere (shapes broadcast), like
    /// `torch.allclose`. NaNs compare equal only with `equalNaN`.
    public func allclose(_ other: Tensor, rtol: Float = 1e-5, atol: Float = 1e-8, equalNaN: Bool = false) throws -> Bool {
        let ok = try broadcastBinary(self, other, op: "allclose") { x, y in
            if x.isNaN || y.isNaN { return (equalNaN && x.isNaN && y.isNaN) ? 1 : 0 }
            if x == y { return 1 }  // equal infinities
            return Swift.abs(x - y) <= atol + rtol * Swift.abs(y) ? 1 : 0
        }
        return ok.toArray().allSatisfy { $0 == 1 }
    }

    /// `condition != 0 ? a : b` elementwise, all three broadcast together, like `torch.where`.
    /// Differentiable in `a` and `b`; the condition is a constant.
    public static func `where`(_ condition: Tensor, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        let shape = try broadcastShapes(try broadcastShapes(condition.shape, a.shape, op: "where"), b.shape, op: "where")
        let c = try broadcastTo(condition, shape), x = try broadcastTo(a, shape), y = try broadcastTo(b, shape)
        let out = try zipMap3(c, x, y) { m, u, v in m != 0 ? u : v }
        return record(out, "where", [a, b]) { g in
            [a.requiresGrad ? try a.reduceGrad(try zipMap(g, c) { gg, m in m != 0 ? gg : 0 }) : nil,
             b.requiresGrad ? try b.reduceGrad(try zipMap(g, c) { gg, m in m != 0 ? 0 : gg }) : nil]
        }
    }

    /// `value` where `mask != 0`, else self (mask broadcasts to self's shape), like `masked_fill`.
    public func maskedFill(_ mask: Tensor, _ value: Float) throws -> Tensor {
        let shape = try broadcastShapes(self.shape, mask.shape, op: "masked_fill")
        guard shape == self.shape else { throw TensorError("masked_fill", "mask of shape \(fmt(mask.shape)) does not broadcast to \(fmt(self.shape))") }
        let m = try broadcastTo(mask, shape)
        let out = try zipMap(self, m) { x, k in k != 0 ? value : x }
        return record(out, "masked_fill", [self]) { g in [try zipMap(g, m) { gg, k in k != 0 ? 0 : gg }] }
    }
}

@inline(__always) func scalarPow(_ x: Float, _ y: Float) -> Float { powf(x, y) }

// MARK: - Operators (throwing: shape errors surface as TensorError)

public func + (a: Tensor, b: Tensor) throws -> Tensor { try a.add(b) }
public func - (a: Tensor, b: Tensor) throws -> Tensor { try a.sub(b) }
public func * (a: Tensor, b: Tensor) throws -> Tensor { try a.mul(b) }
public func / (a: Tensor, b: Tensor) throws -> Tensor { try a.div(b) }
public func + (a: Tensor, s: Float) throws -> Tensor { try a.add(s) }
public func - (a: Tensor, s: Float) throws -> Tensor { try a.sub(s) }
public func * (a: Tensor, s: Float) throws -> Tensor { try a.mul(s) }
public func / (a: Tensor, s: Float) throws -> Tensor { try a.div(s) }
public func + (s: Float, a: Tensor) throws -> Tensor { try a.add(s) }
public func - (s: Float, a: Tensor) throws -> Tensor { try a.rsub(s) }
public func * (s: Float, a: Tensor) throws -> Tensor { try a.mul(s) }
public func / (s: Float, a: Tensor) throws -> Tensor { try a.rdiv(s) }
public prefix func - (a: Tensor) throws -> Tensor { try a.neg() }
