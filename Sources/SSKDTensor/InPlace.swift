// In-place activations for inference, like PyTorch's `relu_()` / `F.silu(x, inplace=True)`.
// Shapes: any; the tensor's own storage (and every view sharing it) is overwritten.
//
// They exist so an eval forward can apply an activation to a freshly computed map without
// allocating a second map of the same size. They never record autograd: using one on a tensor
// that takes part in a graph (grad mode on and the tensor requires grad) throws, where PyTorch
// would either record or refuse.

extension Tensor {
    /// `max(x, 0)` in place.
    @discardableResult public func relu_() throws -> Tensor {
        try inPlace("relu_") { y, x, n in mapForward(ReluLanes.self, y, x, count: n) }
    }
    /// `min(max(x, 0), 6)` in place.
    @discardableResult public func relu6_() throws -> Tensor { try inPlace("relu6_", relu6Forward) }
    /// `x * sigmoid(x)` in place.
    @discardableResult public func silu_() throws -> Tensor { try inPlace("silu_", siluForward) }
    /// `x * relu6(x + 3) / 6` in place.
    @discardableResult public func hardswish_() throws -> Tensor { try inPlace("hardswish_", hardswishForward) }
    /// `relu6(x + 3) / 6` in place.
    @discardableResult public func hardsigmoid_() throws -> Tensor { try inPlace("hardsigmoid_", hardsigmoidForward) }

    private func inPlace(_ op: String, _ f: (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int) -> Void) throws -> Tensor {
        if GradMode.isEnabled && requiresGrad {
            throw TensorError(op, "in-place activation on a tensor that requires grad (shape \(fmt(shape))); use the out-of-place op or run under withNoGrad")
        }
        // The kernels read each element before writing it, so input and output may alias.
        f(data, data, count)
        return self
    }
}

/// relu on 8 lanes (NaN stays NaN, like PyTorch's relu_).
private enum ReluLanes: LaneMap {
    @inline(__always) static func apply(_ v: SIMD8<Float>) -> SIMD8<Float> { v.replacing(with: 0, where: v .< 0) }
}
