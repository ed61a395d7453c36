// Stochastic gradient descent, PyTorch's `torch.optim.SGD` (single-tensor path):
//   g = grad (negated if maximize) + weight_decay * p
//   momentum != 0: buf = g on the first step, else buf = momentum * buf + (1 - dampening) * g
//                  g = nesterov ? g + momentum * buf : buf
//   p -= lr * g

import SSKDNN
import SSKDTensor

public final class SGD: Optimizer {
    /// One group with these settings (PyTorch defaults: momentum 0, dampening 0, no weight
    /// decay, no nesterov; lr is required).
    public convenience init(_ params: [Tensor], lr: Double, momentum: Double = 0, dampening: Double = 0, weightDecay: Double = 0,
                            nesterov: Bool = false, maximize: Bool = false) throws {
        try self.init(groups: [ParamGroup(params: params, lr: lr, weightDecay: weightDecay, momentum: momentum, dampening: dampening,
                                          nesterov: nesterov, maximize: maximize)])
    }

    public override init(groups: [ParamGroup]) throws {
        for (i, g) in groups.enumerated() {
            guard g.momentum >= 0 else { throw TensorError("SGD", "group \(i): invalid momentum value \(g.momentum)") }
            guard !g.nesterov || (g.momentum > 0 && g.dampening == 0) else {
                throw TensorError("SGD", "group \(i): nesterov momentum requires a momentum and zero dampening")
            }
        }
        try super.init(groups: groups)
    }

    public override var bufferNames: [String] { ["momentum_buffer"] }

    public override func update(_ p: Tensor, grad: Tensor, state: ParamState, group: ParamGroup) throws {
        let n = p.count
        let w = p.data, gr = grad.data
        let wd = Float(group.weightDecay), mom = Float(group.momentum), damp = Float(1 - group.dampening)
        let lr = Float(group.lr), sign: Float = group.maximize ? -1 : 1
        state.step += 1
        if group.momentum == 0 {
            parallelFor(n, grain: 1 << 15) { r in for i in r { let g = sign * gr[i] + wd * w[i]; w[i] -= lr * g } }
            return
        }
        let first = state.buffers["momentum_buffer"] == nil
        let buf = try state.buffers["momentum_buffer"] ?? zerosLike(p)
        state.buffers["momentum_buffer"] = buf
        let b = buf.data
        let nesterov = group.nesterov
        parallelFor(n, grain: 1 << 15) { r in
            for i in r {
                var g = sign * gr[i]
                if wd != 0 { g += wd * w[i] }
                b[i] = first ? g : mom * b[i] + damp * g
                g = nesterov ? g + mom * b[i] : b[i]
                w[i] -= lr * g
            }
        }
    }
}
