#if canImport(Glibc)
import Glibc
#endif

// Pointwise activations of MobileNetV2 (relu6) and EfficientNet-B0 (silu, sigmoid in squeeze-and-
// excitation), plus the hard variants of MobileNetV3. relu and sigmoid are in Elementwise.swift.
//
// Shapes: x, y, dy, dx are flat buffers of `count` floats.
//   relu6(x)       = min(max(x, 0), 6)            d/dx = 1 on 0 < x < 6 (PyTorch's hardtanh rule)
//   silu(x)        = x * sigmoid(x)               d/dx = s * (1 + x * (1 - s))
//   hardsigmoid(x) = relu6(x + 3) / 6             d/dx = 1/6 on -3 < x < 3
//   hardswish(x)   = x * relu6(x + 3) / 6         d/dx = 0 for x < -3, x/3 + 1/2 for x <= 3, 1 above

/// Applies `f` elementwise (parallel over chunks).
@inline(__always) func mapForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int, _ f: (Float) -> Float) {
    parallelFor(count) { r in for i in r { y[i] = f(x[i]) } }
}

/// dx = f(dy, x) elementwise.
@inline(__always) func mapBackward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int,
                                   _ f: (Float, Float) -> Float) {
    parallelFor(count) { r in for i in r { dx[i] = f(dy[i], x[i]) } }
}

@inline(__always) func sigmoidScalar(_ x: Float) -> Float {
    x >= 0 ? 1 / (1 + expf(-x)) : { let e = expf(x); return e / (1 + e) }()
}

func relu6Forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    // NaN passes through like PyTorch's hardtanh (comparisons with NaN are false).
    mapForward(y, x, count: count) { v in v < 0 ? 0 : (v > 6 ? 6 : v) }
}

func relu6Backward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    mapBackward(dx, dy, x, count: count) { g, v in v > 0 && v < 6 ? g : 0 }
}

func siluForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    mapForward(y, x, count: count) { v in v * sigmoidScalar(v) }
}

func siluBackward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    mapBackward(dx, dy, x, count: count) { g, v in
        let s = sigmoidScalar(v)
        return g * s * (1 + v * (1 - s))
    }
}

func hardsigmoidForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    mapForward(y, x, count: count) { v in v <= -3 ? 0 : (v >= 3 ? 1 : v / 6 + 0.5) }
}

func hardsigmoidBackward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    mapBackward(dx, dy, x, count: count) { g, v in v > -3 && v < 3 ? g / 6 : 0 }
}

func hardswishForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    mapForward(y, x, count: count) { v in v <= -3 ? 0 : (v >= 3 ? v : v * (v + 3) / 6) }
}

func hardswishBackward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    mapBackward(dx, dy, x, count: count) { g, v in v < -3 ? 0 : (v <= 3 ? g * (v / 3 + 0.5) : g) }
}
