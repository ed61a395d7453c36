// The command line of `sskd run` after the recipe: settings, plugin folders, positional arguments.

/// Splits `--set key=value`, `--set=key=value` and `--plugins DIR` out of the arguments that
/// follow the recipe (so they may come before or after it); the rest are positional. The values
/// are typed later, by `LuaHost.setArguments`. Lives here (not in the CLI) so the `--set` fuzz
/// harness and the tests reach it.
public func splitRecipeArguments(_ args: [String]) throws -> (settings: [(String, String)], plugins: [String], positional: [String]) {
    var settings: [(String, String)] = [], plugins: [String] = [], positional: [String] = []
    var i = 0
    func setting(_ s: String) throws -> (String, String) {
        guard let eq = s.firstIndex(of: "="), eq != s.startIndex else { throw LuaError("--set expects key=value, got '\(s)'") }
        return (String(s[..<eq]), String(s[s.index(after: eq)...]))
    }
    while i < args.count {
        let a = args[i]
        if a == "--" { positional += args[(i + 1)...]; break }
        if a == "--set" || a == "--plugins" {
            guard i + 1 < args.count else { throw LuaError("\(a) needs a value") }
            if a == "--set" { settings.append(try setting(args[i + 1])) } else { plugins.append(args[i + 1]) }
            i += 2; continue
        }
        if a.hasPrefix("--set=") { settings.append(try setting(String(a.dropFirst(6)))); i += 1; continue }
        if a.hasPrefix("--plugins=") { plugins.append(String(a.dropFirst(10))); i += 1; continue }
        positional.append(a); i += 1
    }
    return (settings, plugins, positional)
}

