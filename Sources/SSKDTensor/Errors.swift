/// A user error from a tensor operation: the op's name and what was wrong (shapes, axes, arguments).
///
/// Every public entry point of the tensor core throws this instead of trapping, so the Lua host
/// can turn it into a Lua error and a REPL session survives it.
public struct TensorError: Error, CustomStringConvertible, Equatable {
    public let op: String
    public let message: String
    public init(_ op: String, _ message: String) {
        self.op = op
        self.message = message
    }
    public var description: String { "\(op): \(message)" }
}

/// Formats a shape the way PyTorch prints it: `[2, 3, 4]`.
@inline(__always) func fmt(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }
