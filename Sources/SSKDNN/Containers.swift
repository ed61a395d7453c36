// Containers: Sequential (children named "0", "1", ...) and Identity.

import SSKDTensor

/// Runs its children in order (`nn.Sequential`). Children can be replaced by index
/// (`seq[1] = Linear(1280, 10)`), which is how a classifier head is swapped.
open class Sequential: Module {
    public init(_ layers: [Module]) {
        super.init()
        for (i, m) in layers.enumerated() { registerModule(String(i), m) }
    }

    public convenience init(_ layers: Module...) { self.init(layers) }

    public var count: Int { children.count }

    /// The i-th layer. Setting replaces it (an index past the end is ignored by the setter; use
    /// `append`).
    public subscript(i: Int) -> Module {
        get { children[i].module }
        set { if i >= 0 && i < children.count { registerModule(children[i].name, newValue) } }
    }

    /// The i-th layer, or nil when out of range.
    public func layer(_ i: Int) -> Module? { i >= 0 && i < children.count ? children[i].module : nil }

    /// Adds a layer at the end, named by its position.
    public func append(_ m: Module) { registerModule(String(children.count), m) }

    open override func forward(_ x: Tensor) throws -> Tensor {
        var y = x
        for (_, m) in children { y = try m(y) }
        return y
    }
}

/// Returns its input (`nn.Identity`), e.g. to drop a classifier head.
public final class Identity: Module {
    public override init() {}
    public override func forward(_ x: Tensor) throws -> Tensor { x }
}
