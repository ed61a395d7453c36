import Foundation
import SSKDTensor
import XCTest
@testable import SSKDLua

final class HostTests: XCTestCase {
    var luaDir: String { LuaScriptTests.luaDir }

    /// Lua's collector is told about tensor memory: dropping 2000 x 4 MB tensors in a loop keeps
    /// the live tensor bytes bounded (without the accounting Lua would see ~100 KB of userdata).
    func testGarbageCollectionBoundsTensorMemory() throws {
        let host = try LuaHost()
        host.collectGarbage()
        let before = MemoryStats.liveBytes
        MemoryStats.resetPeak()
        try host.execute("""
        for i = 1, 2000 do
          local t = torch.zeros(1024, 1024)   -- 4 MB
          if i % 500 == 0 then _G.last = t end
        end
        """)
        let peak = MemoryStats.peakBytes - before
        XCTAssertLessThan(peak, 600 << 20, "peak tensor memory \(peak >> 20) MB for 2000 dropped 4 MB tensors")
        host.collectGarbage()
        XCTAssertLessThan(MemoryStats.liveBytes - before, 16 << 20, "after a full collection only `last` stays alive")
        // Temporaries produced by ops count too.
        MemoryStats.resetPeak()
        let before2 = MemoryStats.liveBytes
        try host.execute("local a = torch.ones(256, 1024) for i = 1, 200 do local b = (a * 2 + 1):exp() end")
        XCTAssertLessThan(MemoryStats.peakBytes - before2, 600 << 20)
    }

    func testClosingTheHostReleasesTensors() throws {
        let before = MemoryStats.liveBytes
        do {
            let host = try LuaHost()
            try host.execute("keep = {} for i = 1, 10 do keep[i] = torch.zeros(256, 1024) end")
            XCTAssertGreaterThanOrEqual(MemoryStats.liveBytes - before, 10 << 20)
        }
        XCTAssertLessThan(MemoryStats.liveBytes - before, 1 << 20)
    }

    func testSwiftTensorsReachLuaAndBack() throws {
        let host = try LuaHost()
        let w = try Tensor([1, 2, 3]).requiringGrad()
        host.call.push(w)
        host.lua_setglobal_raw("w")
        try host.execute("loss = (w * w):sum(); loss:backward()")
        XCTAssertEqual(w.grad?.toArray(), [2, 4, 6], "a loss composed in Lua backpropagates into the Swift tensor")
    }

    func testBrokenAndDuplicatePluginsAreReported() throws {
        let host = try LuaHost()
        XCTAssertEqual(host.loadPlugins(from: LuaHost.pluginDirectories()), [])
        let problems = host.loadPlugins(from: [luaDir + "/broken_plugins"])
        XCTAssertEqual(problems.count, 4, problems.joined(separator: "\n"))
        let all = problems.joined(separator: "\n")
        XCTAssertTrue(all.contains("broken_plugins/schedules/syntax_error.lua:4:"), all)  // syntax error: file and line
        XCTAssertTrue(all.contains("broken_plugins/losses/runtime_error.lua:3: attempt to index a nil value"), all)
        XCTAssertTrue(all.contains("broken_plugins/stoppers/wrong_type.lua: a stoppers plugin must return a function or a callable table, got number"), all)
        XCTAssertTrue(all.contains("duplicate schedules plugin 'constant'"), all)
        XCTAssertTrue(all.contains("plugins/schedules/constant.lua"), "the duplicate names the first definition: \(all)")
        // The good ones are registered, the duplicate did not replace the original.
        XCTAssertEqual(try host.evaluate("return losses.half_ce ~= nil, model_variants.tiny{classes = 3}.classes, schedules.constant(1)"),
                       ["true", "3", "0.5"])
        XCTAssertEqual(try host.evaluate("return schedules.syntax_error, stoppers.wrong_type"), ["nil", "nil"])
    }

    func testPluginFolderFromEnvironmentList() throws {
        setenv("SSKD_PLUGINS", "/nonexistent:\(luaDir)/broken_plugins", 1)
        defer { unsetenv("SSKD_PLUGINS") }
        let dirs = LuaHost.pluginDirectories(extra: ["/extra"])
        XCTAssertEqual(dirs.suffix(3), ["/nonexistent", "\(luaDir)/broken_plugins", "/extra"])
        XCTAssertTrue(dirs.first?.hasSuffix("/plugins") ?? false)
    }

    func testRecipeArgumentsAreTyped() throws {
        let host = try LuaHost()
        let recipe = NSTemporaryDirectory() + "sskd-args-\(getpid()).lua"
        try """
        result = {math.type(arg.epochs), arg.epochs, math.type(arg.lr), arg.flag, arg.name, arg.none, arg[0], arg[1], math.type(arg[2])}
        """.write(toFile: recipe, atomically: true, encoding: .utf8)
        defer { unlink(recipe) }
        try host.run(file: recipe, settings: [("epochs", "30"), ("lr", "1e-3"), ("flag", "false"), ("name", "paper run"), ("none", "nil")],
                     arguments: ["first", "2"])
        XCTAssertEqual(try host.evaluate("return table.unpack(result, 1, 9)"),
                       ["integer", "30", "float", "false", "paper run", "nil", recipe, "first", "integer"])
    }

    func testRecipeErrorsCarryFileLineAndTraceback() throws {
        let host = try LuaHost()
        let recipe = NSTemporaryDirectory() + "sskd-err-\(getpid()).lua"
        try "local function inner()\n  return torch.zeros(2):matmul(nil)\nend\ninner()\n".write(toFile: recipe, atomically: true, encoding: .utf8)
        defer { unlink(recipe) }
        XCTAssertThrowsError(try host.run(file: recipe)) { error in
            let msg = luaMessage(error)
            XCTAssertTrue(msg.hasPrefix("\(recipe):2: bad argument #2 to 'Tensor:matmul' (Tensor expected, got nil)"), msg)
            XCTAssertTrue(msg.contains("stack traceback:"), msg)
            XCTAssertTrue(msg.contains("in local 'inner'") || msg.contains("in function 'inner'") || msg.contains("inner"), msg)
        }
        XCTAssertThrowsError(try host.run(file: "/nonexistent/recipe.lua")) { error in
            XCTAssertTrue(luaMessage(error).contains("cannot open /nonexistent/recipe.lua"), luaMessage(error))
        }
        // The host survives and runs the next chunk.
        XCTAssertEqual(try host.evaluate("return 1 + 1"), ["2"])
    }

    func testDeepAndHostileInputsDoNotCrash() throws {
        let host = try LuaHost()
        let cases = [
            "local t = {} for i = 1, 40 do t = {t} end return torch.tensor(t)",     // too deep
            "return torch.zeros(1e300)",
            "return torch.zeros(1 << 62, 1 << 62)",
            "return torch.arange(0, math.huge)",
            "return torch.tensor{0/0}:item() ~= torch.tensor{0/0}:item()",
            "local x = torch.zeros(2) ; debug.setmetatable(x, nil) ; return x",
            "return getmetatable(torch.zeros(1)).__gc(nil)",
            "local mt = getmetatable(torch.zeros(1)) local x = torch.zeros(1) mt.__gc(x) return x:sum()",
            "return torch.zeros(2):view(setmetatable({}, {__len = function() error('len') end}))",
            "return torch.tensor(setmetatable({1, 2}, {__index = function() error('idx') end}))",
            "local co = coroutine.wrap(function() coroutine.yield(torch.ones(2):sum()) end) return co()",
            "return torch.no_grad(coroutine.yield)",
            "return string.rep('x', 10):rep(3)",
        ]
        for code in cases {
            _ = try? host.evaluate(code)
        }
        XCTAssertThrowsError(try host.evaluate("local mt = getmetatable(torch.zeros(1)) local x = torch.zeros(1) mt.__gc(x) return x:sum()")) {
            XCTAssertTrue(luaMessage($0).contains("Tensor has been collected"), luaMessage($0))
        }
        XCTAssertEqual(try host.evaluate("return torch.ones(3):sum():item()"), ["3.0"])
    }
}
