import SSKDTensor
import XCTest
@testable import SSKDLua

/// What the trainer does: call plugins (schedules, losses, stoppers) from Swift.
final class CallFromSwiftTests: XCTestCase {
    func testSchedulesLossesAndStoppersFromSwift() throws {
        let host = try LuaScriptTests.makeHost()
        let alpha = try XCTUnwrap(host.reference("schedules.paper_gradual"))
        XCTAssertEqual(try host.call(.ref(alpha), [.number(4)]).first?.number, 0)
        XCTAssertEqual(try host.call(.ref(alpha), [.number(7)]).first?.number ?? 0, 0.2, accuracy: 1e-12)

        let blend = try XCTUnwrap(host.reference("losses.blend"))
        let s = try Tensor.randn([4, 10]).requiringGrad(), t = try Tensor.randn([4, 10])
        let y = try Tensor([1, 2, 3, 4])
        let loss = try XCTUnwrap(host.call(.ref(blend), [.tensor(s), .tensor(t), .tensor(y), .number(0.3), .number(3)]).first?.tensor)
        try loss.backward()
        XCTAssertEqual(s.grad?.shape, [4, 10], "a Lua loss backpropagates into Swift tensors")

        let factory = try XCTUnwrap(host.reference("stoppers.patience"))
        let stopper = try XCTUnwrap(host.call(.ref(factory), [.record(["patience": .number(2)])]).first)
        var history: [LuaValue] = []
        var stoppedAt: Int? = nil
        for (e, acc) in [0.5, 0.6, 0.55, 0.58, 0.7].enumerated() {
            history.append(.record(["epoch": .number(Double(e)), "accuracy": .number(acc)]))
            let r = try host.callMethod(stopper, "step", [.list(history)])
            if r.first?.isTruthy == true { stoppedAt = e; XCTAssertTrue(r[1].string?.contains("did not improve") ?? false); break }
        }
        XCTAssertEqual(stoppedAt, 3)
    }

    func testErrorsComeBackAsSwiftErrors() throws {
        let host = try LuaScriptTests.makeHost()
        let blend = try XCTUnwrap(host.reference("losses.blend"))
        XCTAssertThrowsError(try host.call(.ref(blend), [.tensor(try Tensor.zeros([2, 3])), .nil, .tensor(try Tensor([0, 1])), .nil, .number(3)])) {
            XCTAssertTrue(luaMessage($0).contains("alpha must be a number"), luaMessage($0))
        }
        XCTAssertThrowsError(try host.call(.number(3), [])) { XCTAssertTrue(luaMessage($0).contains("attempt to call a number value"), luaMessage($0)) }
        XCTAssertThrowsError(try host.callMethod(.number(1), "step", [])) { XCTAssertTrue(luaMessage($0).contains("cannot call method 'step'")) }
        XCTAssertNil(host.reference("schedules.nope"))
        XCTAssertNil(host.reference("nope.deeper.still"))
        // values round-trip
        try host.execute("function echo(...) return ... end")
        let echo = try XCTUnwrap(host.reference("echo"))
        let out = try host.call(.ref(echo), [.nil, .boolean(true), .number(2.5), .string("s"), .list([.number(1)])])
        XCTAssertEqual(out.count, 5)
        XCTAssertFalse(out[0].isTruthy); XCTAssertEqual(out[1].boolean, true); XCTAssertEqual(out[2].number, 2.5); XCTAssertEqual(out[3].string, "s")
        guard case .ref = out[4] else { return XCTFail("tables come back by reference") }
    }

    func testReferenceOutlivingItsHostFailsCleanly() throws {
        var host: LuaHost? = try LuaHost()
        let f = try XCTUnwrap(host?.reference("torch.zeros"))
        host = nil
        XCTAssertThrowsError(try f.push())
    }
}
