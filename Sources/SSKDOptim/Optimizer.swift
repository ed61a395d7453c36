// Optimizers: parameter groups, per-parameter state, zeroing gradients, state save/load.
// Update rules follow PyTorch's single-tensor CPU implementations exactly (SGD.swift, Adam.swift);
// every update is one tight loop over a parameter's raw buffer.

import Foundation
import SSKDNN
import SSKDTensor

/// A set of parameters sharing hyperparameters (PyTorch's `param_groups` entry). Each optimizer
/// reads the fields it uses; schedules write `lr` (and `momentum` / `beta1` for one-cycle).
public struct ParamGroup {
    public var params: [Tensor]
    public var lr: Double
    public var weightDecay: Double
    /// SGD momentum.
    public var momentum: Double
    public var dampening: Double
    public var nesterov: Bool
    /// Adam / AdamW.
    public var beta1: Double, beta2: Double
    public var eps: Double
    public var amsgrad: Bool
    /// Ascend instead of descend.
    public var maximize: Bool

    public init(params: [Tensor], lr: Double = 1e-3, weightDecay: Double = 0, momentum: Double = 0, dampening: Double = 0,
                nesterov: Bool = false, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8, amsgrad: Bool = false,
                maximize: Bool = false) {
        self.params = params; self.lr = lr; self.weightDecay = weightDecay; self.momentum = momentum
        self.dampening = dampening; self.nesterov = nesterov; self.beta1 = beta1; self.beta2 = beta2
        self.eps = eps; self.amsgrad = amsgrad; self.maximize = maximize
    }
}

/// Per-parameter optimizer state: a step count and named buffers (`momentum_buffer`, `exp_avg`, ...).
public final class ParamState {
    public var step: Double = 0
    public var buffers: [String: Tensor] = [:]
    public init() {}
}

/// An optimizer's state as tensors plus scalars, ready for a checkpoint. Keys follow PyTorch's
/// `state_dict()` layout flattened: `state.<i>.exp_avg` (i = parameter index over all groups),
/// `state.<i>.step`, `param_groups.<g>.lr`, ...
public struct OptimizerState {
    public var tensors: [(key: String, tensor: Tensor)] = []
    public var scalars: [String: Double] = [:]
    public init() {}

    /// Adds the tensors to `sd` under `prefix` and the scalars to its metadata (as exact decimal
    /// strings, so a resumed run sees bit-identical learning rates and step counts).
    public func write(into sd: inout StateDict, prefix: String = "optimizer.") {
        for (k, t) in tensors { sd.set(prefix + k, t) }
        for (k, v) in scalars { sd.metadata[prefix + k] = v.description }
    }

    /// Reads back what `write(into:prefix:)` stored.
    public init(from sd: StateDict, prefix: String = "optimizer.") throws {
        for k in sd.keys where k.hasPrefix(prefix) { if let t = sd[k] { tensors.append((String(k.dropFirst(prefix.count)), t)) } }
        for (k, v) in sd.metadata where k.hasPrefix(prefix) {
            guard let d = Double(v) else { throw TensorError("optimizer.load_state_dict", "metadata '\(k)' = '\(v)' is not a number") }
            scalars[String(k.dropFirst(prefix.count))] = d
        }
    }
}

/// Base class of SGD, Adam and AdamW.
open class Optimizer {
    public var paramGroups: [ParamGroup]
    /// State per group, per parameter (created lazily on the first step that sees a gradient).
    public private(set) var state: [[ParamState]]
    /// Names of the per-parameter buffers this optimizer keeps (for load validation).
    open var bufferNames: [String] { [] }
    open var name: String { String(describing: type(of: self)) }

    public init(groups: [ParamGroup]) throws {
        var seen = Set<ObjectIdentifier>()
        for (gi, g) in groups.enumerated() {
            guard g.lr >= 0, g.lr.isFinite else { throw TensorError("optimizer", "group \(gi): invalid learning rate \(g.lr)") }
            guard g.weightDecay >= 0 else { throw TensorError("optimizer", "group \(gi): invalid weight_decay value \(g.weightDecay)") }
            for p in g.params {
                guard seen.insert(ObjectIdentifier(p)).inserted else { throw TensorError("optimizer", "some parameters appear in more than one parameter group") }
            }
        }
        guard !groups.isEmpty, groups.contains(where: { !$0.params.isEmpty }) else { throw TensorError("optimizer", "optimizer got an empty parameter list") }
        paramGroups = groups
        state = groups.map { $0.params.map { _ in ParamState() } }
    }

    /// Adds a parameter group (PyTorch's `add_param_group`), e.g. to unfreeze a backbone later.
    public func addParamGroup(_ group: ParamGroup) throws {
        let known = Set(paramGroups.flatMap { $0.params.map(ObjectIdentifier.init) })
        guard group.params.allSatisfy({ !known.contains(ObjectIdentifier($0)) }) else {
            throw TensorError("optimizer", "some parameters appear in more than one parameter group")
        }
        guard group.lr >= 0, group.lr.isFinite, group.weightDecay >= 0 else {
            throw TensorError("optimizer", "invalid learning rate \(group.lr) or weight decay \(group.weightDecay)")
        }
        paramGroups.append(group)
        state.append(group.params.map { _ in ParamState() })
    }

    /// Clears every parameter's gradient (PyTorch's default `set_to_none=True`).
    public func zeroGrad() { for g in paramGroups { for p in g.params { p.grad = nil } } }

    /// Applies one update to every parameter that has a gradient.
    public func step() throws {
        for gi in paramGroups.indices {
            let g = paramGroups[gi]
            for (pi, p) in g.params.enumerated() {
                guard let grad = p.grad else { continue }
                guard grad.shape == p.shape else { throw TensorError("\(name).step", "gradient shape \(grad.shape) does not match parameter shape \(p.shape)") }
                try update(p, grad: grad, state: state[gi][pi], group: g)
            }
        }
    }

    /// One parameter's update; subclasses implement it over raw buffers.
    open func update(_ p: Tensor, grad: Tensor, state: ParamState, group: ParamGroup) throws {
        throw TensorError(name, "update is not implemented")
    }

    // MARK: State

    public func stateDict() throws -> OptimizerState {
        var s = OptimizerState()
        var flat = 0
        for (gi, g) in paramGroups.enumerated() {
            s.scalars["param_groups.\(gi).lr"] = g.lr
            s.scalars["param_groups.\(gi).weight_decay"] = g.weightDecay
            s.scalars["param_groups.\(gi).momentum"] = g.momentum
            s.scalars["param_groups.\(gi).dampening"] = g.dampening
            s.scalars["param_groups.\(gi).nesterov"] = g.nesterov ? 1 : 0
            s.scalars["param_groups.\(gi).beta1"] = g.beta1
            s.scalars["param_groups.\(gi).beta2"] = g.beta2
            s.scalars["param_groups.\(gi).eps"] = g.eps
            s.scalars["param_groups.\(gi).amsgrad"] = g.amsgrad ? 1 : 0
            s.scalars["param_groups.\(gi).maximize"] = g.maximize ? 1 : 0
            s.scalars["param_groups.\(gi).params"] = Double(g.params.count)
            for pi in g.params.indices {
                let st = state[gi][pi]
                if st.step > 0 || !st.buffers.isEmpty { s.scalars["state.\(flat).step"] = st.step }
                for k in st.buffers.keys.sorted() { s.tensors.append(("state.\(flat).\(k)", try st.buffers[k]!.clone())) }
                flat += 1
            }
        }
        return s
    }

    /// Restores hyperparameters and per-parameter state saved by `stateDict()` from an
    /// optimizer over the same parameters (same groups, counts and shapes).
    public func loadStateDict(_ s: OptimizerState) throws {
        let op = "\(name).load_state_dict"
        var groups = paramGroups
        for gi in groups.indices {
            func v(_ k: String) throws -> Double {
                guard let x = s.scalars["param_groups.\(gi).\(k)"] else { throw TensorError(op, "missing param_groups.\(gi).\(k)") }
                return x
            }
            guard Int(try v("params")) == groups[gi].params.count else {
                throw TensorError(op, "group \(gi) has \(groups[gi].params.count) parameters but the saved state has \(Int(try v("params")))")
            }
            groups[gi].lr = try v("lr"); groups[gi].weightDecay = try v("weight_decay")
            groups[gi].momentum = try v("momentum"); groups[gi].dampening = try v("dampening"); groups[gi].nesterov = try v("nesterov") != 0
            groups[gi].beta1 = try v("beta1"); groups[gi].beta2 = try v("beta2"); groups[gi].eps = try v("eps")
            groups[gi].amsgrad = try v("amsgrad") != 0; groups[gi].maximize = try v("maximize") != 0
        }
        if s.scalars["param_groups.\(groups.count).lr"] != nil { throw TensorError(op, "saved state has more parameter groups than this optimizer (\(groups.count))") }
        let tensors = Dictionary(s.tensors.map { ($0.key, $0.tensor) }, uniquingKeysWith: { a, _ in a })
        var newState: [[ParamState]] = []
        var flat = 0
        for g in groups {
            var row: [ParamState] = []
            for p in g.params {
                let st = ParamState()
                st.step = s.scalars["state.\(flat).step"] ?? 0
                for b in bufferNames {
                    guard let t = tensors["state.\(flat).\(b)"] else { continue }
                    guard t.shape == p.shape else { throw TensorError(op, "state.\(flat).\(b) has shape \(t.shape) but the parameter has \(p.shape)") }
                    st.buffers[b] = try t.detach().clone()
                }
                row.append(st)
                flat += 1
            }
            newState.append(row)
        }
        let known = Set((0..<flat).flatMap { i in bufferNames.map { "state.\(i).\($0)" } })
        if let bad = s.tensors.first(where: { !known.contains($0.key) }) { throw TensorError(op, "unexpected state tensor '\(bad.key)'") }
        paramGroups = groups
        state = newState
    }
}

/// A zeroed buffer shaped like `p`.
@inline(__always) func zerosLike(_ p: Tensor) throws -> Tensor { try Tensor.zeros(like: p) }
