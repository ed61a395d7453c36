// Learning-rate schedules, PyTorch's formulas in closed form (double precision), indexed by the
// scheduler's step count t = 0, 1, 2, ... (PyTorch's `last_epoch`; t = 0 at construction).
//
//   constant      lr = base
//   step          lr = base * gamma^floor(t / stepSize)                        (StepLR)
//   multiStep     lr = base * gamma^(number of milestones <= t)                (MultiStepLR)
//   exponential   lr = base * gamma^t                                          (ExponentialLR)
//   cosine        t < W: base * (s + (1 - s) * t / W)                          (LinearLR warmup,
//                 else:  etaMin + (base - etaMin) * (1 + cos(pi * (t - W) / (T - W))) / 2
//                        = SequentialLR(LinearLR(s, 1, W), CosineAnnealingLR(T - W, etaMin), [W]))
//   oneCycle      OneCycleLR: warm from maxLR/div to maxLR over pctStart * T - 1 steps, then
//                 anneal (cos or linear) to maxLR/(div * finalDiv) at T - 1; momentum (SGD) or
//                 beta1 (Adam) cycles inversely between maxMomentum and baseMomentum.

import Foundation
import SSKDTensor

public enum Schedule: Equatable {
    case constant
    case step(stepSize: Int, gamma: Double = 0.1)
    case multiStep(milestones: [Int], gamma: Double = 0.1)
    case exponential(gamma: Double)
    /// Cosine annealing over `totalSteps` with an optional linear warmup of `warmupSteps`
    /// starting at `warmupStartFactor` x base.
    case cosine(totalSteps: Int, warmupSteps: Int = 0, warmupStartFactor: Double = 1.0 / 3.0, etaMin: Double = 0)
    case oneCycle(OneCycle)

    /// PyTorch's `OneCycleLR` settings (defaults as in PyTorch).
    public struct OneCycle: Equatable {
        public var maxLR: Double
        public var totalSteps: Int
        public var pctStart: Double = 0.3
        public var cosineAnnealing: Bool = true
        public var divFactor: Double = 25
        public var finalDivFactor: Double = 1e4
        public var threePhase: Bool = false
        public var cycleMomentum: Bool = true
        public var baseMomentum: Double = 0.85
        public var maxMomentum: Double = 0.95
        public init(maxLR: Double, totalSteps: Int) { self.maxLR = maxLR; self.totalSteps = totalSteps }
    }
}

/// Drives the learning rate of every parameter group of an optimizer along a `Schedule`.
/// Call `step()` once per epoch (or per batch, as the schedule was sized).
public final class LRScheduler {
    public let optimizer: Optimizer
    public let schedule: Schedule
    /// The number of `step()` calls so far (PyTorch's `last_epoch`).
    public private(set) var lastEpoch: Int = 0
    /// The group learning rates the schedule scales (for one-cycle: maxLR / divFactor).
    public private(set) var baseLRs: [Double]

    public init(_ optimizer: Optimizer, _ schedule: Schedule) throws {
        switch schedule {
        case .constant: break
        case let .step(s, _): guard s > 0 else { throw TensorError("StepLR", "step_size must be positive, got \(s)") }
        case let .multiStep(ms, _): guard ms == ms.sorted() else { throw TensorError("MultiStepLR", "milestones should be increasing, got \(ms)") }
        case .exponential: break
        case let .cosine(total, warm, start, _):
            guard total > 0, warm >= 0, warm < total else { throw TensorError("CosineLR", "need 0 <= warmupSteps < totalSteps, got \(warm), \(total)") }
            guard start > 0, start <= 1 else { throw TensorError("CosineLR", "warmup start factor must be in (0, 1], got \(start)") }
        case let .oneCycle(c):
            guard c.totalSteps > 0 else { throw TensorError("OneCycleLR", "total_steps must be positive, got \(c.totalSteps)") }
            guard c.pctStart >= 0, c.pctStart <= 1 else { throw TensorError("OneCycleLR", "pct_start must be in [0, 1], got \(c.pctStart)") }
        }
        self.optimizer = optimizer
        self.schedule = schedule
        if case let .oneCycle(c) = schedule {
            baseLRs = optimizer.paramGroups.map { _ in c.maxLR / c.divFactor }
        } else {
            baseLRs = optimizer.paramGroups.map { $0.lr }
        }
        apply()
    }

    /// Advances one step and sets the optimizer's learning rates.
    public func step() {
        lastEpoch += 1
        apply()
    }

    /// The learning rates for the current step.
    public var currentLRs: [Double] { baseLRs.map { lr(base: $0, at: lastEpoch) } }

    /// The learning rate a group with base `base` has at step `t`.
    public func lr(base: Double, at t: Int) -> Double {
        switch schedule {
        case .constant: return base
        case let .step(s, gamma): return base * Foundation.pow(gamma, Double(t / s))
        case let .multiStep(ms, gamma): return base * Foundation.pow(gamma, Double(ms.filter { $0 <= t }.count))
        case let .exponential(gamma): return base * Foundation.pow(gamma, Double(t))
        case let .cosine(total, warm, start, etaMin):
            if t < warm { return base * (start + (1 - start) * Double(t) / Double(warm)) }
            return etaMin + (base - etaMin) * (1 + cos(Double.pi * Double(t - warm) / Double(total - warm))) / 2
        case let .oneCycle(c): return oneCycle(c, t).lr
        }
    }

    /// OneCycleLR's (lr, momentum) at step t (PyTorch's phase table and annealing).
    func oneCycle(_ c: Schedule.OneCycle, _ t: Int) -> (lr: Double, momentum: Double) {
        let initial = c.maxLR / c.divFactor, minLR = initial / c.finalDivFactor
        let T = Double(c.totalSteps)
        struct Phase { let end: Double; let lr: (Double, Double); let mom: (Double, Double) }
        let phases: [Phase] = c.threePhase ? [
            Phase(end: c.pctStart * T - 1, lr: (initial, c.maxLR), mom: (c.maxMomentum, c.baseMomentum)),
            Phase(end: 2 * c.pctStart * T - 2, lr: (c.maxLR, initial), mom: (c.baseMomentum, c.maxMomentum)),
            Phase(end: T - 1, lr: (initial, minLR), mom: (c.maxMomentum, c.maxMomentum)),
        ] : [
            Phase(end: c.pctStart * T - 1, lr: (initial, c.maxLR), mom: (c.maxMomentum, c.baseMomentum)),
            Phase(end: T - 1, lr: (c.maxLR, minLR), mom: (c.baseMomentum, c.maxMomentum)),
        ]
        func anneal(_ a: Double, _ b: Double, _ pct: Double) -> Double {
            c.cosineAnnealing ? b + (a - b) / 2 * (cos(Double.pi * pct) + 1) : (b - a) * pct + a
        }
        var start = 0.0
        let step = Double(t)
        for (i, ph) in phases.enumerated() {
            if step <= ph.end || i == phases.count - 1 {
                let pct = (step - start) / (ph.end - start)
                return (anneal(ph.lr.0, ph.lr.1, pct), anneal(ph.mom.0, ph.mom.1, pct))
            }
            start = ph.end
        }
        return (minLR, c.maxMomentum)
    }

    private func apply() {
        if case let .oneCycle(c) = schedule {
            let (lr, mom) = oneCycle(c, lastEpoch)
            for i in optimizer.paramGroups.indices {
                optimizer.paramGroups[i].lr = lr
                if c.cycleMomentum {
                    // SGD cycles `momentum`, Adam-family optimizers cycle beta1.
                    if optimizer is Adam { optimizer.paramGroups[i].beta1 = mom } else { optimizer.paramGroups[i].momentum = mom }
                }
            }
            return
        }
        for i in optimizer.paramGroups.indices where i < baseLRs.count { optimizer.paramGroups[i].lr = lr(base: baseLRs[i], at: lastEpoch) }
    }

    // MARK: State

    /// `last_epoch` and the base learning rates.
    public func stateDict() -> [String: Double] {
        var s: [String: Double] = ["last_epoch": Double(lastEpoch)]
        for (i, b) in baseLRs.enumerated() { s["base_lrs.\(i)"] = b }
        return s
    }

    /// Restores `stateDict()` and re-applies the learning rates of that step.
    public func loadStateDict(_ s: [String: Double]) throws {
        // Bounded before Int(): the value comes from a checkpoint file.
        guard let e = s["last_epoch"], e >= 0, e <= 1e15, e == e.rounded() else { throw TensorError("lr_scheduler.load_state_dict", "missing or invalid last_epoch") }
        var bases: [Double] = []
        for i in baseLRs.indices {
            guard let b = s["base_lrs.\(i)"] else { throw TensorError("lr_scheduler.load_state_dict", "missing base_lrs.\(i)") }
            bases.append(b)
        }
        lastEpoch = Int(e)
        baseLRs = bases
        apply()
    }
}
