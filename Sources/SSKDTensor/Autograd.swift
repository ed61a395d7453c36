#if canImport(Glibc)
import Glibc
#endif

/// One recorded operation of the autograd graph.
///
/// A node holds the op's differentiable inputs and a closure that maps the gradient of the op's
/// output to gradients of those inputs (nil where an input needs none). `backward()` releases
/// both after use unless asked to retain the graph.
public final class Node {
    /// The op's name, for error messages and `gradFn` printing (`"add"`, `"conv2d"`, ...).
    public let name: String
    var inputs: [Tensor]
    var backwardFn: ((Tensor) throws -> [Tensor?])?

    init(name: String, inputs: [Tensor], backward: @escaping (Tensor) throws -> [Tensor?]) {
        self.name = name
        self.inputs = inputs
        self.backwardFn = backward
    }

    /// Runs this op's backward alone, like calling `y.grad_fn(dy)` in PyTorch: maps d(loss)/d(output)
    /// to one gradient per input (nil where none is needed), without accumulating into `.grad` or
    /// releasing the node. For benchmarks and debugging.
    public func apply(_ gradOutput: Tensor) throws -> [Tensor?] {
        guard let fn = backwardFn else {
            throw TensorError("backward", "the graph of op \(name) was already freed by a backward pass without retainGraph")
        }
        return try withNoGrad { try fn(gradOutput.detach()) }
    }

    /// Tears a dying graph down iteratively. Releasing it recursively (tensor -> node -> input
    /// tensor -> node ...) would overflow the stack on a chain of a few hundred thousand ops.
    deinit {
        backwardFn = nil
        var pending = inputs
        inputs = []
        while var t = pending.popLast() {
            // Only inputs that die with this node are unlinked; shared ones keep their graph.
            guard isKnownUniquelyReferenced(&t), var node = t.gradFn else { continue }
            t.gradFn = nil
            guard isKnownUniquelyReferenced(&node) else { continue }
            node.backwardFn = nil
            pending.append(contentsOf: node.inputs)
            node.inputs = []
        }
    }
}

/// Whether ops record themselves for autograd (the `torch.no_grad()` switch).
///
/// The switch is per thread, like PyTorch's, so that a no-grad scope on a data-loading thread
/// cannot turn recording off under a training step running on another thread. `parallelFor` and
/// `parallelTasks` carry the caller's setting into their worker threads.
public enum GradMode {
    /// A thread-specific slot holding nil (enabled, the default) or a non-nil marker (disabled).
    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k, nil)
        return k
    }()

    public static var isEnabled: Bool {
        get { pthread_getspecific(key) == nil }
        set { pthread_setspecific(key, newValue ? nil : UnsafeRawPointer(bitPattern: 1)) }
    }
}

/// Runs `body` with gradient recording switched off, like `with torch.no_grad():`.
@discardableResult
public func withNoGrad<T>(_ body: () throws -> T) rethrows -> T {
    let saved = GradMode.isEnabled
    GradMode.isEnabled = false
    defer { GradMode.isEnabled = saved }
    return try body()
}

/// Records `out` as the result of op `name` on `inputs` when grad mode is on and any input
/// requires grad. `backward` receives d(loss)/d(out) (shaped like `out`) and returns one gradient
/// per input, in order, each shaped like its input (or nil). It runs with grad mode off.
/// `attributes` are the op's settings that its inputs' and output's shapes do not tell (a scalar
/// operand, reduced axes); they are evaluated only while an `OpTrace` observer is set.
@inline(__always)
public func record(_ out: Tensor, _ name: String, _ inputs: [Tensor], attributes: @autoclosure () -> OpTrace.Attributes = [:],
                   _ backward: @escaping (Tensor) throws -> [Tensor?]) -> Tensor {
    if Profiler.enabled { Profiler.forwardOp(name, inputs, out) }
    if let observer = OpTrace.observer { observer(name, inputs, out, attributes()) }
    guard GradMode.isEnabled, inputs.contains(where: { $0.requiresGrad }) else { return out }
    // An op that hands back one of its inputs unchanged gets a fresh alias to record on;
    // recording on the input itself would make it its own parent.
    let out = inputs.contains(where: { $0 === out }) ? Tensor(shape: out.shape, storage: out.storage) : out
    out.requiresGrad = true
    out.gradFn = Node(name: name, inputs: inputs, backward: backward)
    return out
}

extension Tensor {
    /// Backpropagates from this tensor, accumulating `.grad` on every leaf that requires grad.
    ///
    /// - Parameters:
    ///   - gradient: d(loss)/d(self); may be omitted only for a one-element tensor (then 1).
    ///   - retainGraph: keep the graph for a second backward (default: release it, like PyTorch).
    public func backward(_ gradient: Tensor? = nil, retainGraph: Bool = false) throws {
        guard requiresGrad else { throw TensorError("backward", "tensor does not require grad and has no grad_fn") }
        let seed: Tensor
        if let g = gradient {
            guard g.shape == shape else { throw TensorError("backward", "gradient shape \(fmt(g.shape)) does not match tensor shape \(fmt(shape))") }
            seed = g.detach()
        } else {
            guard count == 1 else { throw TensorError("backward", "grad can be implicitly created only for one-element outputs, got shape \(fmt(shape)); pass a gradient") }
            seed = try Tensor.ones(like: self)
        }
        let profiling = Profiler.enabled
        if profiling { Profiler.beginBackward() }
        defer { if profiling { Profiler.endBackward() } }
        try withNoGrad {
            guard let root = gradFn else {
                try accumulateLeafGrad(self, seed)
                return
            }
            // Topological order of nodes (post-order DFS, iterative to survive deep graphs).
            var order: [Node] = []
            var visited = Set<ObjectIdentifier>()
            var stack: [(Node, Int)] = [(root, 0)]
            visited.insert(ObjectIdentifier(root))
            while let (node, i) = stack.popLast() {
                if i < node.inputs.count {
                    stack.append((node, i + 1))
                    if let child = node.inputs[i].gradFn, visited.insert(ObjectIdentifier(child)).inserted {
                        stack.append((child, 0))
                    }
                } else {
                    order.append(node)
                }
            }
            var pending: [ObjectIdentifier: Tensor] = [ObjectIdentifier(root): seed]
            for node in order.reversed() {
                guard let g = pending.removeValue(forKey: ObjectIdentifier(node)) else { continue }
                guard let fn = node.backwardFn else {
                    throw TensorError("backward", "trying to backward through the graph a second time (op \(node.name)); its buffers were freed. Pass retainGraph: true the first time")
                }
                let t0 = profiling ? Profiler.clock() : 0
                let grads = try fn(g)
                let t1 = profiling ? Profiler.clock() : 0
                if profiling { Profiler.backwardNode(node, outShape: g.shape, ms: (t1 - t0) * 1000) }
                for (input, gi) in zip(node.inputs, grads) {
                    guard let gi, input.requiresGrad else { continue }
                    guard gi.shape == input.shape else {
                        throw TensorError("backward", "internal: op \(node.name) produced gradient of shape \(fmt(gi.shape)) for input of shape \(fmt(input.shape))")
                    }
                    if let child = input.gradFn {
                        let key = ObjectIdentifier(child)
                        if let acc = pending[key] { pending[key] = try acc + gi } else { pending[key] = gi }
                    } else {
                        try accumulateLeafGrad(input, gi)
                    }
                }
                if profiling { Profiler.charge("autograd accumulate", .backward, ms: (Profiler.clock() - t1) * 1000) }
                if !retainGraph {
                    node.backwardFn = nil
                    node.inputs = []
                }
            }
        }
    }
}

/// Adds `g` into `leaf.grad`, giving the leaf its own gradient buffer the first time.
@inline(__always) func accumulateLeafGrad(_ leaf: Tensor, _ g: Tensor) throws {
    if let acc = leaf.grad {
        let a = acc.data, b = g.data
        parallelStream(acc.count) { r in for i in r { a[i] += b[i] } }
    } else {
        let own = try Tensor(g.shape, zeroed: false)
        own.data.update(from: g.data, count: g.count)
        leaf.grad = own
    }
}

/// A setting of a traced op (see `OpTrace`).
public enum OpAttribute: Equatable, Sendable {
    case int(Int)
    case ints([Int])
    case float(Float)
    case bool(Bool)
}

/// Sees every op as it runs, with or without grad mode: how exporters (ONNX) trace a forward.
/// Off (nil) except inside a trace; then one call per op on the tracing thread. The observer
/// must not run ops itself.
public enum OpTrace {
    public typealias Attributes = [String: OpAttribute]
    public typealias Observer = (_ name: String, _ inputs: [Tensor], _ output: Tensor, _ attributes: Attributes) -> Void
    nonisolated(unsafe) public static var observer: Observer?
}
