/// A training-layer error: where (component, file, epoch, batch) and what.
public struct TrainError: Error, CustomStringConvertible {
    public let context: String
    public let message: String
    public init(_ context: String, _ message: String) { self.context = context; self.message = message }
    public var description: String { "\(context): \(message)" }
}
