import Foundation
import XCTest
import SSKDNN
@testable import SSKDOptim
import SSKDTensor

final class OptimizerTests: XCTestCase {
    /// PyTorch's results for each optimizer variant, three steps with different gradients.
    func testUpdateRulesMatchPyTorch() throws {
        let fx = try SafeTensors.read(try fixturePath("optim_rules.safetensors"))
        func t(_ k: String) throws -> Tensor { guard let v = fx[k] else { throw TensorError("fixture", "missing \(k)") }; return v }
        let variants: [(String, ([Tensor]) throws -> Optimizer)] = [
            ("sgd_plain", { try SGD($0, lr: 0.1) }),
            ("sgd_momentum", { try SGD($0, lr: 0.05, momentum: 0.9, weightDecay: 0.01) }),
            ("sgd_dampening", { try SGD($0, lr: 0.05, momentum: 0.8, dampening: 0.3) }),
            ("sgd_nesterov", { try SGD($0, lr: 0.05, momentum: 0.9, weightDecay: 0.001, nesterov: true) }),
            ("sgd_maximize", { try SGD($0, lr: 0.05, momentum: 0.5, maximize: true) }),
            ("adam", { try Adam($0) }),
            ("adam_wd_amsgrad", { try Adam($0, lr: 0.01, betas: (0.8, 0.99), eps: 1e-6, weightDecay: 0.1, amsgrad: true) }),
            ("adamw", { try AdamW($0, lr: 0.01) }),
            ("adamw_amsgrad", { try AdamW($0, lr: 0.02, weightDecay: 0.05, amsgrad: true) }),
            ("adam_groups", { ps in try Adam(groups: [ParamGroup(params: Array(ps[0..<2]), lr: 0.01),
                                                      ParamGroup(params: [ps[2]], lr: 0.1, weightDecay: 0.01)]) }),
        ]
        var worst: Float = 0
        for (name, make) in variants {
            let ps = try (0..<3).map { try t("init.\($0)").clone().detach().requiringGrad() }
            let opt = try make(ps)
            for step in 0..<3 {
                for (i, p) in ps.enumerated() { p.grad = try t("grad.\(step).\(i)").clone() }
                try opt.step()
                for (i, p) in ps.enumerated() {
                    let e = relError(p, try t("\(name).\(step).\(i)"))
                    worst = max(worst, e)
                    XCTAssertLessThanOrEqual(e, 1e-6, "\(name) step \(step) tensor \(i)")
                }
            }
        }
        print("optimizer rules: worst relative error \(worst)")
    }

    func testDefaultsAreTorchs() throws {
        let p = try Tensor.zeros([2]).requiringGrad()
        let adam = try Adam([p])
        XCTAssertEqual(adam.paramGroups[0].lr, 1e-3)
        XCTAssertEqual(adam.paramGroups[0].beta1, 0.9)
        XCTAssertEqual(adam.paramGroups[0].beta2, 0.999)
        XCTAssertEqual(adam.paramGroups[0].eps, 1e-8)
        XCTAssertEqual(adam.paramGroups[0].weightDecay, 0)
        XCTAssertFalse(adam.paramGroups[0].amsgrad)
        XCTAssertEqual(try AdamW([p]).paramGroups[0].weightDecay, 1e-2)
        XCTAssertTrue(try AdamW([p]).decoupledWeightDecay)
        XCTAssertEqual(try SGD([p], lr: 0.1).paramGroups[0].momentum, 0)
    }

    func testZeroGradSkipsAndValidation() throws {
        let a = try Tensor([1, 2]).requiringGrad(), b = try Tensor([3]).requiringGrad()
        let opt = try SGD([a, b], lr: 1)
        a.grad = try Tensor([0.5, 0.5])
        try opt.step()            // b has no gradient: untouched
        XCTAssertEqual(a.toArray(), [0.5, 1.5])
        XCTAssertEqual(b.toArray(), [3])
        opt.zeroGrad()
        XCTAssertNil(a.grad)
        XCTAssertThrowsError(try SGD([a, a], lr: 1))
        XCTAssertThrowsError(try SGD([], lr: 1))
        XCTAssertThrowsError(try SGD([a], lr: -1))
        XCTAssertThrowsError(try SGD([a], lr: 1, dampening: 0.1, nesterov: true))
        XCTAssertThrowsError(try Adam([a], betas: (1.0, 0.999)))
        a.grad = try Tensor([1, 2, 3])
        XCTAssertThrowsError(try opt.step())
    }

    /// Saving after one step and loading into a fresh optimizer continues bit-identically.
    func testStateSaveLoadResumesExactly() throws {
        for make in [{ (ps: [Tensor]) in try Adam(ps, lr: 0.01, amsgrad: true) as Optimizer },
                     { (ps: [Tensor]) in try SGD(ps, lr: 0.1, momentum: 0.9, nesterov: true) as Optimizer }] {
            let gen = Generator(seed: 9)
            let p0 = try [Tensor.randn([4, 3], generator: gen), Tensor.randn([5], generator: gen)]
            let grads = try (0..<2).map { _ in try [Tensor.randn([4, 3], generator: gen), Tensor.randn([5], generator: gen)] }
            let a = try p0.map { try $0.clone().detach().requiringGrad() }
            let optA = try make(a)
            for (p, g) in zip(a, grads[0]) { p.grad = g }
            try optA.step()
            // Checkpoint through a safetensors file.
            var sd = StateDict()
            try optA.stateDict().write(into: &sd)
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("sskd-optim-\(getpid()).safetensors").path
            try SafeTensors.write(sd, to: path)
            let restored = try OptimizerState(from: SafeTensors.read(path))
            try? FileManager.default.removeItem(atPath: path)
            let b = try a.map { try $0.clone().detach().requiringGrad() }
            let optB = try make(b)
            optB.paramGroups[0].lr = 123      // overwritten by the load
            try optB.loadStateDict(restored)
            XCTAssertEqual(optB.paramGroups[0].lr, optA.paramGroups[0].lr)
            for (p, g) in zip(a, grads[1]) { p.grad = g }
            for (p, g) in zip(b, grads[1]) { p.grad = g }
            try optA.step(); try optB.step()
            for (x, y) in zip(a, b) { XCTAssertEqual(x.toArray(), y.toArray()) }
            // A state for other shapes is rejected.
            let c = try make([try Tensor.zeros([2]).requiringGrad(), try Tensor.zeros([5]).requiringGrad()])
            XCTAssertThrowsError(try c.loadStateDict(restored))
        }
    }
}

final class ScheduleTests: XCTestCase {
    func testSchedulesMatchPyTorch() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: try fixturePath("schedules.json")))
        guard let ref = try JSONSerialization.jsonObject(with: data) as? [String: [String: [Double]]] else { return XCTFail("bad schedules.json") }
        var oneCycle = Schedule.OneCycle(maxLR: 0.5, totalSteps: 30)
        var adamCycle = Schedule.OneCycle(maxLR: 0.01, totalSteps: 30)
        adamCycle.pctStart = 0.25; adamCycle.cosineAnnealing = false
        var three = Schedule.OneCycle(maxLR: 0.2, totalSteps: 30)
        three.threePhase = true
        let cases: [(String, Schedule, Bool)] = [
            ("step", .step(stepSize: 7, gamma: 0.5), false),
            ("multistep", .multiStep(milestones: [5, 12, 20], gamma: 0.3), false),
            ("exponential", .exponential(gamma: 0.9), false),
            ("cosine", .cosine(totalSteps: 30, etaMin: 0.001), false),
            ("cosine_warmup", .cosine(totalSteps: 30, warmupSteps: 5, warmupStartFactor: 0.25), false),
            ("onecycle_sgd", .oneCycle(oneCycle), false),
            ("onecycle_adam_linear", .oneCycle(adamCycle), true),
            ("onecycle_three_phase", .oneCycle(three), false),
        ]
        oneCycle.cycleMomentum = true
        for (name, schedule, adam) in cases {
            guard let expected = ref[name]?["lr"], let moms = ref[name]?["momentum"] else { return XCTFail("missing \(name)") }
            let p = try Tensor.zeros([1]).requiringGrad()
            let opt: Optimizer = adam ? try Adam([p], lr: 0.1) : try SGD([p], lr: 0.1, momentum: 0.9)
            let sched = try LRScheduler(opt, schedule)
            for (t, lr) in expected.enumerated() {
                let g = opt.paramGroups[0]
                XCTAssertEqual(g.lr, lr, accuracy: 1e-12 * max(1, abs(lr)), "\(name) step \(t)")
                if name.hasPrefix("onecycle") {
                    XCTAssertEqual(adam ? g.beta1 : g.momentum, moms[t], accuracy: 1e-12, "\(name) momentum step \(t)")
                }
                sched.step()
            }
        }
    }

    func testConstantAndStateRoundTrip() throws {
        let p = try Tensor.zeros([1]).requiringGrad()
        let opt = try SGD([p], lr: 0.1)
        let constant = try LRScheduler(opt, .constant)
        for _ in 0..<5 { constant.step() }
        XCTAssertEqual(opt.paramGroups[0].lr, 0.1)
        let s = try LRScheduler(opt, .cosine(totalSteps: 20, warmupSteps: 4))
        for _ in 0..<7 { s.step() }
        let saved = s.stateDict()
        let lr7 = opt.paramGroups[0].lr
        let opt2 = try SGD([try Tensor.zeros([1]).requiringGrad()], lr: 0.1)
        let s2 = try LRScheduler(opt2, .cosine(totalSteps: 20, warmupSteps: 4))
        try s2.loadStateDict(saved)
        XCTAssertEqual(s2.lastEpoch, 7)
        XCTAssertEqual(opt2.paramGroups[0].lr, lr7)
        XCTAssertThrowsError(try s2.loadStateDict([:]))
        // A checkpoint's last_epoch beyond any Int (found by reading the checkpoint path for
        // traps) is an error, not Int()'s trap.
        XCTAssertThrowsError(try s2.loadStateDict(["last_epoch": 1e300, "base_lrs.0": 0.1]))
        XCTAssertThrowsError(try s2.loadStateDict(["last_epoch": .nan, "base_lrs.0": 0.1]))
        XCTAssertThrowsError(try LRScheduler(opt, .step(stepSize: 0)))
        XCTAssertThrowsError(try LRScheduler(opt, .cosine(totalSteps: 5, warmupSteps: 5)))
    }
}

final class ParamGroupTests: XCTestCase {
    func testAddParamGroupAndPerGroupSettings() throws {
        let a = try Tensor([1, 1]).requiringGrad(), b = try Tensor([1, 1]).requiringGrad()
        let opt = try SGD([a], lr: 0.1)
        try opt.addParamGroup(ParamGroup(params: [b], lr: 1.0, weightDecay: 0.5))
        XCTAssertThrowsError(try opt.addParamGroup(ParamGroup(params: [a])))
        a.grad = try Tensor([1, 1]); b.grad = try Tensor([1, 1])
        try opt.step()
        XCTAssertEqual(a.toArray(), [0.9, 0.9])
        XCTAssertEqual(b.toArray(), [-0.5, -0.5])      // 1 - 1.0 * (1 + 0.5 * 1)
        let sched = try LRScheduler(opt, .step(stepSize: 1, gamma: 0.5))
        sched.step()
        XCTAssertEqual(opt.paramGroups.map(\.lr), [0.05, 0.5])
    }
}
