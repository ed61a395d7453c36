// Adam and AdamW, PyTorch's `torch.optim.Adam` / `AdamW` (single-tensor CPU path), per element:
//   Adam:  g += weight_decay * p            AdamW: p *= 1 - lr * weight_decay
//   m = lerp(m, g, 1 - beta1)               (m + w * (g - m), w = 1 - beta1 < 0.5)
//   v = beta2 * v + (1 - beta2) * g * g
//   amsgrad: vmax = max(vmax, v), used for v below
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// Bias corrections are computed in double, like PyTorch's Python floats.

import Foundation
import SSKDNN
import SSKDTensor

public class Adam: Optimizer {
    /// Decoupled weight decay (AdamW) instead of L2 added to the gradient (Adam).
    public let decoupledWeightDecay: Bool

    /// One group; PyTorch defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.
    public convenience init(_ params: [Tensor], lr: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999), eps: Double = 1e-8,
                            weightDecay: Double = 0, amsgrad: Bool = false, maximize: Bool = false) throws {
        try self.init(groups: [ParamGroup(params: params, lr: lr, weightDecay: weightDecay, beta1: betas.0, beta2: betas.1, eps: eps,
                                          amsgrad: amsgrad, maximize: maximize)])
    }

    public override convenience init(groups: [ParamGroup]) throws { try self.init(groups: groups, decoupled: false) }

    init(groups: [ParamGroup], decoupled: Bool) throws {
        for (i, g) in groups.enumerated() {
            guard g.eps >= 0 else { throw TensorError("Adam", "group \(i): invalid epsilon value \(g.eps)") }
            guard g.beta1 >= 0, g.beta1 < 1, g.beta2 >= 0, g.beta2 < 1 else {
                throw TensorError("Adam", "group \(i): invalid betas (\(g.beta1), \(g.beta2)); each must be in [0, 1)")
            }
        }
        decoupledWeightDecay = decoupled
        try super.init(groups: groups)
    }

    public override var bufferNames: [String] { ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"] }

    public override func update(_ p: Tensor, grad: Tensor, state: ParamState, group: ParamGroup) throws {
        let n = p.count
        let w = p.data, gr = grad.data
        let m = try (state.buffers["exp_avg"] ?? zerosLike(p)), v = try (state.buffers["exp_avg_sq"] ?? zerosLike(p))
        state.buffers["exp_avg"] = m; state.buffers["exp_avg_sq"] = v
        var vmaxT: Tensor? = nil
        if group.amsgrad { let t = try state.buffers["max_exp_avg_sq"] ?? zerosLike(p); state.buffers["max_exp_avg_sq"] = t; vmaxT = t }
        state.step += 1
        let t = state.step
        let bc1 = 1 - Foundation.pow(group.beta1, t), bc2 = 1 - Foundation.pow(group.beta2, t)
        let stepSize = Float(group.lr / bc1)
        let bc2Sqrt = Float(bc2.squareRoot())
        let eps = Float(group.eps)
        let w1 = Float(1 - group.beta1), b2 = Float(group.beta2), w2 = Float(1 - group.beta2)
        let wd = Float(group.weightDecay)
        let decay = Float(1 - group.lr * group.weightDecay)
        let sign: Float = group.maximize ? -1 : 1
        let decoupled = decoupledWeightDecay
        let mp = m.data, vp = v.data
        let vm = vmaxT?.data
        let lerpLow = w1 < 0.5
        // The common case (Adam without weight decay or amsgrad) runs 8 lanes at a time. Each
        // lane does exactly the scalar loop's operations in the same order (no fused
        // multiply-adds), so the results are bit-identical to it.
        let plain = wd == 0 && vm == nil && lerpLow
        // Elementwise and independent: split across threads in large chunks.
        parallelFor(n, grain: 1 << 15) { r in
            var lo = r.lowerBound
            if plain {
                let w1v = SIMD8<Float>(repeating: w1), b2v = SIMD8<Float>(repeating: b2), w2v = SIMD8<Float>(repeating: w2)
                let bcv = SIMD8<Float>(repeating: bc2Sqrt), epsv = SIMD8<Float>(repeating: eps), stepv = SIMD8<Float>(repeating: -stepSize)
                let signv = SIMD8<Float>(repeating: sign)
                while lo + 8 <= r.upperBound {
                    let g = signv * UnsafeRawPointer(gr + lo).loadUnaligned(as: SIMD8<Float>.self)
                    var m = UnsafeRawPointer(mp + lo).loadUnaligned(as: SIMD8<Float>.self)
                    var v = UnsafeRawPointer(vp + lo).loadUnaligned(as: SIMD8<Float>.self)
                    m = m + w1v * (g - m)
                    v = v * b2v + w2v * (g * g)
                    let denom = v.squareRoot() / bcv + epsv
                    let wv = UnsafeRawPointer(w + lo).loadUnaligned(as: SIMD8<Float>.self) + stepv * (m / denom)
                    UnsafeMutableRawPointer(mp + lo).storeBytes(of: m, as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(vp + lo).storeBytes(of: v, as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(w + lo).storeBytes(of: wv, as: SIMD8<Float>.self)
                    lo += 8
                }
            }
            for i in lo..<r.upperBound {
                var g = sign * gr[i]
                if wd != 0 {
                    if decoupled { w[i] *= decay } else { g += wd * w[i] }
                }
                // torch.lerp's two-sided formula keeps it exact at both ends.
                mp[i] = lerpLow ? mp[i] + w1 * (g - mp[i]) : g - (g - mp[i]) * (1 - w1)
                vp[i] = vp[i] * b2 + w2 * (g * g)
                var second = vp[i]
                if let vm { vm[i] = Swift.max(vm[i], vp[i]); second = vm[i] }
                let denom = second.squareRoot() / bc2Sqrt + eps
                w[i] += -stepSize * (mp[i] / denom)
            }
        }
    }
}

/// Adam with decoupled weight decay (Loshchilov & Hutter); PyTorch default weight decay 1e-2.
public final class AdamW: Adam {
    public convenience init(_ params: [Tensor], lr: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999), eps: Double = 1e-8,
                            weightDecay: Double = 1e-2, amsgrad: Bool = false, maximize: Bool = false) throws {
        try self.init(groups: [ParamGroup(params: params, lr: lr, weightDecay: weightDecay, beta1: betas.0, beta2: betas.1, eps: eps,
                                          amsgrad: amsgrad, maximize: maximize)])
    }

    public convenience init(groups: [ParamGroup]) throws { try self.init(groups: groups, decoupled: true) }
}
