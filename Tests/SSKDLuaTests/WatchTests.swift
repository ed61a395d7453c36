import Foundation
import XCTest
@testable import SSKDLua

/// `sskd run --watch`: plugin files and sskd.hot modules edited during a run are reloaded at the
/// next epoch boundary; a reload that fails keeps the old code and says so.
final class WatchTests: XCTestCase {
    func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "sskd-watch-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d + "/schedules", withIntermediateDirectories: true)
        return d
    }

    func schedule(_ value: String) -> String {
        "-- schedules.ramp(epoch) -> alpha\nreturn function(e) return \(value) end\n"
    }

    func testEditedPluginAndHotModuleReloadAtEpochBoundaries() throws {
        let dir = try tempDir()
        let plugin = dir + "/schedules/ramp.lua", hooks = dir + "/hooks.lua"
        try schedule("0.25").write(toFile: plugin, atomically: true, encoding: .utf8)
        try "return {tag = function() return 'v1' end}\n".write(toFile: hooks, atomically: true, encoding: .utf8)

        let host = try LuaHost()
        XCTAssertEqual(host.loadPlugins(from: LuaHost.pluginDirectories(extra: [dir])), [])
        try host.execute("sskd.watching = true; sskd._watch_plugins()")
        // The recipe rewrites the files from its epoch-end hook: a good edit after epoch 0, a
        // broken plugin after epoch 1 (kept old), then a fixed one after epoch 2.
        let results = try host.evaluate("""
        local H = sskd.hot(\(quote(hooks)))
        local all = data.fashion_mnist{split = "test"}
        local train = all:split{samples = 32, seed = 1}
        local function tiny() torch.manual_seed(1) return nn.Sequential{nn.Flatten(), nn.Linear(784, 10)} end
        local tags = {}
        local function write(path, text) local f = assert(io.open(path, "w")) f:write(text) f:close() end
        local r = distill{teacher = tiny(), student = tiny(), train = train, epochs = 4, batch = 32, quiet = true,
          alpha = schedules.ramp,
          on_epoch_end = function(e)
            tags[#tags + 1] = H.tag()
            if e == 0 then
              write(\(quote(plugin)), "return function(e) return 0.5 end\\n")
              write(\(quote(hooks)), "return {tag = function() return 'v2' end}\\n")
            elseif e == 1 then
              write(\(quote(plugin)), "return function(e) return ( end\\n")
            elseif e == 2 then
              write(\(quote(plugin)), "return function(e) return 0.75 end\\n")
            end
          end}
        local alphas = {}
        for i, h in ipairs(r.history) do alphas[i] = h.alpha end
        return table.concat(alphas, ","), table.concat(tags, ","), table.concat(sskd.reload_log, "\\n")
        """)
        XCTAssertEqual(results[0], "0.25,0.5,0.5,0.75", "plugin edits take effect at the next epoch; a broken edit keeps the old code")
        XCTAssertEqual(results[1], "v1,v2,v2,v2", "sskd.hot forwards to the reloaded module")
        XCTAssertTrue(results[2].contains("reload of \(plugin) failed, keeping the old code"), results[2])
        XCTAssertTrue(results[2].contains("reloaded \(hooks)"), results[2])
    }

    func testWithoutWatchNothingReloads() throws {
        let dir = try tempDir()
        let hooks = dir + "/hooks.lua"
        try "return {v = function() return 1 end}\n".write(toFile: hooks, atomically: true, encoding: .utf8)
        let host = try LuaHost()
        let r = try host.evaluate("""
        local H = sskd.hot(\(quote(hooks)))
        local f = assert(io.open(\(quote(hooks)), "w")) f:write("return {v = function() return 2 end}") f:close()
        sskd._epoch_boundary({})
        return H.v()
        """)
        XCTAssertEqual(r, ["1"])
        XCTAssertThrowsError(try host.execute("sskd.hot('/nonexistent/hooks.lua')")) { XCTAssertTrue("\($0)".contains("/nonexistent/hooks.lua")) }
    }

    func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "\\'") + "'" }
}
