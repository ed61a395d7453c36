import Foundation
import SSKDTensor
import XCTest
@testable import SSKDLua

/// Runs the Lua test scripts in Tests/SSKDLuaTests/lua (each returns passed count and failures).
final class LuaScriptTests: XCTestCase {
    static var luaDir: String { Bundle.module.resourceURL!.appendingPathComponent("lua").path }

    /// A host with the shipped plugins and `require` able to find the test helpers.
    static func makeHost() throws -> LuaHost {
        let host = try LuaHost()
        let problems = host.loadPlugins(from: LuaHost.pluginDirectories())
        XCTAssertEqual(problems, [], "shipped plugins must load cleanly")
        try host.execute("package.path = '\(luaDir)/?.lua;' .. package.path")
        return host
    }

    func runScript(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let host = try Self.makeHost()
        let results = try host.evaluate("return dofile('\(Self.luaDir)/\(name)')")
        XCTAssertEqual(results.count, 2, "\(name) must end with `return T.report()`", file: file, line: line)
        let passed = Int(results.first ?? "") ?? 0
        let failures = results.count > 1 ? results[1] : "?"
        XCTAssertEqual(failures, "", "\(name) failures:\n\(failures)", file: file, line: line)
        XCTAssertGreaterThan(passed, 0, file: file, line: line)
        print("\(name): \(passed) Lua tests passed")
    }

    func testTensor() throws { try runScript("test_tensor.lua") }
    func testTensorErrors() throws { try runScript("test_tensor_errors.lua") }
    func testTorchAndF() throws { try runScript("test_torch.lua") }
    func testAutograd() throws { try runScript("test_autograd.lua") }
    func testPlugins() throws { try runScript("test_plugins.lua") }
    func testHelp() throws { try runScript("test_help.lua") }
    func testNN() throws { try runScript("test_nn.lua") }
    func testData() throws { try runScript("test_data.lua") }
    func testTrain() throws { try runScript("test_train.lua") }
    func testNoCrash() throws { try runScript("test_no_crash.lua") }
    func testDist() throws { try runScript("test_dist.lua") }
    func testSaveLoad() throws { try runScript("test_save.lua") }
}
