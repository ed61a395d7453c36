// The `data` namespace (datasets, stratified splits) and `transforms` (the paper's
// augmentations), bound over SSKDData. Dataset indices are 0-based like everything else.
import CLua
import CLuaShim
import Foundation
import SSKDData
import SSKDTensor
import SSKDTrain

/// A dataset as Lua sees it (any `Dataset`: a format reader, a subset, an unlabeled view).
public final class LuaDataset {
    public let dataset: Dataset
    public init(_ d: Dataset) { dataset = d }
}

/// A transform as Lua sees it.
public final class LuaTransform {
    public let transform: Transform
    public init(_ t: Transform) { transform = t }
}

extension LuaCall {
    public func dataset(_ i: Int32) throws -> Dataset { try object(i, LuaDataset.self, expected: "Dataset").dataset }
    public func transform(_ i: Int32) throws -> Transform { try object(i, LuaTransform.self, expected: "Transform").transform }
}

extension Options {
    public func dataset(_ key: String) throws -> Dataset? { try object(key, LuaDataset.self, expected: "Dataset")?.dataset }
    public func transform(_ key: String) throws -> Transform? { try object(key, LuaTransform.self, expected: "Transform")?.transform }
}

enum DataBindings {
    static func register() {
        registerDatasets()
        registerTransforms()
    }

    static func registerDatasets() {
        let D = LuaTypes.register(LuaDataset.self, name: "Dataset",
                                  doc: "A random-access image dataset (uint8 images, class labels). #ds is its size; ds[i] (0-based) gives image, label.")
        D.tostring { d in
            let ds = d.dataset
            return "Dataset(\(ds.name), \(ds.count) images\(ds.imageShape.map { ", \($0)" } ?? "")\(ds.isLabeled ? ", \(ds.classCount) classes" : ", unlabeled"))"
        }
        D.field("name", "the dataset's name") { c, d in c.pushString(d.dataset.name); return 1 }
        D.field("classes", "class names in label order (a table)") { c, d in
            let names = d.dataset.classNames
            lua_createtable(c.L, Int32(names.count), 0)
            for (i, n) in names.enumerated() { c.pushString(n); lua_rawseti(c.L, -2, lua_Integer(i + 1)) }
            return 1
        }
        D.field("labeled", "whether images have labels") { c, d in c.push(d.dataset.isLabeled); return 1 }
        D.meta("__len") { c in c.push(try c.dataset(1).count); return 1 }
        D.method("size", "ds:size() -> integer", "number of images") { c, d in c.push(d.dataset.count); return 1 }
        D.method("fingerprint", "ds:fingerprint() -> string",
                 "SHA-256 (hex) of the images and labels in index order: the same images in the same order give the same string, whatever their source") { c, d in
            c.pushString(try Fingerprint.dataset(d.dataset)); return 1
        }
        D.method("get", "ds:get(i) -> Tensor[C,H,W] in [0,1], label or nil", "image i (0-based) scaled to [0, 1] and its label") { c, d in
            try getItem(c, d.dataset, try c.int(2))
        }
        // ds[i] -> {image, label} (a metamethod returns one value; ds:get(i) returns two).
        D.index { c, d in
            guard c.type(2) == LUA_TNUMBER else { c.pushNil(); return 1 }
            lua_createtable(c.L, 2, 0)
            let t = lua_gettop(c.L)
            _ = try getItem(c, d.dataset, try c.int(2))
            lua_rawseti(c.L, t, 2)
            lua_rawseti(c.L, t, 1)
            return 1
        }
        D.method("class_counts", "ds:class_counts() -> table", "images per class (index 1 = class 0)") { c, d in
            c.push(ints: try d.dataset.classCounts()); return 1
        }
        D.method("split", "ds:split{samples=N, validation=0, seed=0} -> samples, validation, rest",
                 "seeded stratified split: N samples, a disjoint validation split, and the remaining labelled images") { c, d in
            try split(c, d.dataset, 2)
        }
        D.method("subset", "ds:subset(indices) -> Dataset", "the images at the given 0-based indices (a table)") { c, d in
            try c.push(object: LuaDataset(try d.dataset.subset(try c.intArray(2, what: "indices"))))
            return 1
        }
        D.method("indices", "ds:indices() -> table", "for a subset: its 0-based indices into the base dataset") { c, d in
            guard let s = d.dataset as? Subset else { throw c.argError(1, message: "\(d.dataset.name) is not a subset") }
            c.push(ints: s.indices); return 1
        }
        D.method("save_indices", "ds:save_indices(path)", "for a subset: writes its 0-based indices, one a line (what scripts/reference/paper_torch.py --indices reads)") { c, d in
            guard let s = d.dataset as? Subset else { throw c.argError(1, message: "\(d.dataset.name) is not a subset") }
            let path = try c.string(2)
            do { try (s.indices.map(String.init).joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8) }
            catch { throw LuaError("\(c.name): cannot write \(path): \(error.localizedDescription)") }
            return 0
        }
        D.method("unlabeled", "ds:unlabeled() -> Dataset", "the same images without labels (for distillation on unlabeled data)") { c, d in
            try c.push(object: LuaDataset(d.dataset.unlabeled())); return 1
        }

        let data = LuaLibraries.named("data", doc: "Datasets: STL-10, Fashion-MNIST/MNIST (IDX), CIFAR-10, image folders; stratified splits.")
        data.function("fashion_mnist", "data.fashion_mnist{split='train'|'test', root=debian path} -> Dataset",
                      "Fashion-MNIST from IDX files (default: the Debian package dataset-fashion-mnist)") { c in
            let o = try c.options(1)
            let split = try o.string("split") ?? "train"
            let root = try o.string("root") ?? IDXDataset.debianFashionMNISTRoot
            try o.finish()
            try trainOrTest(c, split)
            try c.push(object: LuaDataset(try IDXDataset.fashionMNIST(root: root, train: split == "train")))
            return 1
        }
        data.function("mnist", "data.mnist{root=DIR, split='train'|'test'} -> Dataset", "MNIST from IDX files (raw or .gz)") { c in
            let o = try c.options(1)
            guard let root = try o.string("root") else { throw LuaError("\(c.name): option 'root' (the folder of the IDX files) is required") }
            let split = try o.string("split") ?? "train"
            try o.finish()
            try trainOrTest(c, split)
            try c.push(object: LuaDataset(try IDXDataset.mnist(root: root, train: split == "train")))
            return 1
        }
        data.function("stl10", "data.stl10{root='data/stl10_binary', split='train'|'test'|'unlabeled'} -> Dataset",
                      "STL-10 binary (96x96 RGB); the unlabeled split is memory-mapped") { c in
            let o = try c.options(1)
            let root = try o.string("root") ?? "data/stl10_binary"
            let name = try o.string("split") ?? "train"
            try o.finish()
            guard let split = STL10.Split(rawValue: name) else { throw LuaError("\(c.name): split must be 'train', 'test' or 'unlabeled', got '\(name)'") }
            try c.push(object: LuaDataset(try STL10(root: root, split: split)))
            return 1
        }
        data.function("stl10_folds", "data.stl10_folds(root) -> {{indices}...}", "STL-10's 10 standard folds of 0-based train indices") { c in
            let folds = try STL10.folds(root: try c.string(1))
            lua_createtable(c.L, Int32(folds.count), 0)
            for (i, f) in folds.enumerated() { c.push(ints: f); lua_rawseti(c.L, -2, lua_Integer(i + 1)) }
            return 1
        }
        data.function("cifar10", "data.cifar10{root=DIR, split='train'|'test'} -> Dataset", "CIFAR-10 binary batches") { c in
            let o = try c.options(1)
            guard let root = try o.string("root") else { throw LuaError("\(c.name): option 'root' (the cifar-10-batches-bin folder) is required") }
            let split = try o.string("split") ?? "train"
            try o.finish()
            try trainOrTest(c, split)
            try c.push(object: LuaDataset(try CIFAR10(root: root, train: split == "train")))
            return 1
        }
        data.function("image_folder", "data.image_folder{root=DIR, channels=3, on_error='fail'|'skip', labels=true} -> Dataset",
                      "root/<class>/*.png|jpg images, classes in sorted order; labels=false: every image under root, without labels") { c in
            let o = try c.options(1)
            guard let root = try o.string("root") else { throw LuaError("\(c.name): option 'root' is required") }
            let channels = try o.int("channels", default: 3)
            let onError = try o.string("on_error") ?? "fail"
            let labeled = try o.bool("labels", default: true)
            try o.finish()
            guard let oe = ImageFolder.OnError(rawValue: onError) else { throw LuaError("\(c.name): on_error must be 'fail' or 'skip', got '\(onError)'") }
            try c.push(object: LuaDataset(try ImageFolder(root: root, channels: channels, onError: oe, labeled: labeled)))
            return 1
        }
        data.function("concat", "data.concat{ds1, ds2, ...} -> Dataset",
                      "datasets end to end (e.g. an unlabelled set plus labelled images seen without labels); labelled only if every part is") { c in
            try c.table(1)
            let n = Int(lua_rawlen(c.L, 1))
            guard n >= 1 else { throw c.argError(1, message: "at least one Dataset expected") }
            var parts: [Dataset] = []
            for i in 1...n {
                lua_rawgeti(c.L, 1, lua_Integer(i))
                guard let d = c.toObject(-1, LuaDataset.self) else {
                    throw c.argError(1, message: "item \(i) is \(c.typeName(-1)), expected a Dataset")
                }
                c.pop()
                parts.append(d.dataset)
            }
            try c.push(object: LuaDataset(try ConcatDataset(parts)))
            return 1
        }
        data.function("split", "data.split(ds, {samples=N, validation=0, seed=0}) -> samples, validation, rest", "same as ds:split{...}") { c in
            try split(c, try c.dataset(1), 2)
        }
    }

    /// The split option of the datasets that have exactly a train and a test split.
    static func trainOrTest(_ c: LuaCall, _ split: String) throws {
        guard split == "train" || split == "test" else { throw LuaError("\(c.name): split must be 'train' or 'test', got '\(split)'") }
    }

    static func getItem(_ c: LuaCall, _ ds: Dataset, _ i: Int) throws -> Int32 {
        guard i >= 0 && i < ds.count else { throw LuaError("\(c.name): index \(i) out of range for \(ds.name) (0..<\(ds.count))") }
        let img = try ds.image(at: i)
        let t = try Tensor(img.pixels.map { Float($0) / 255 }, shape: [img.shape.channels, img.shape.height, img.shape.width])
        _ = c.push(t)
        if let y = try ds.label(at: i) { c.push(y) } else { c.pushNil() }
        return 2
    }

    static func split(_ c: LuaCall, _ ds: Dataset, _ i: Int32) throws -> Int32 {
        let o = try c.options(i)
        let samples = try o.int("samples")
        let validation = try o.int("validation", default: 0)
        let seed = try o.int("seed", default: 0)
        try o.finish()
        let s = try ds.stratifiedSplit(samples: samples, validation: validation, seed: UInt64(bitPattern: Int64(seed)))
        try c.push(object: LuaDataset(s.train))
        try c.push(object: LuaDataset(s.validation))
        try c.push(object: LuaDataset(s.rest))
        return 3
    }

    static func registerTransforms() {
        let T = LuaTypes.register(LuaTransform.self, name: "Transform", doc: "An image transform (torchvision semantics), seeded per sample by the loader.")
        T.tostring { $0.transform.description }
        T.method("apply", "t:apply(image [, seed]) -> Tensor", "applies the transform to a [C,H,W] tensor in [0,1] (seeded)") { c, t in
            let x = try c.tensor(2)
            guard x.dim == 3 else { throw c.argError(2, message: "expected an image [C, H, W], got shape \(x.shape)") }
            let img = try Image(shape: ImageShape(channels: x.shape[0], height: x.shape[1], width: x.shape[2]), pixels: x.toArray())
            let out = try t.transform.apply(img, generator: Generator(seed: UInt64(bitPattern: Int64(try c.int(3, default: 0)))))
            return c.push(try Tensor(out.pixels, shape: [out.shape.channels, out.shape.height, out.shape.width]))
        }

        let tr = LuaLibraries.named("transforms", doc: "Image transforms with torchvision's semantics (the paper's augmentations).")
        func make(_ name: String, _ sig: String, _ summary: String, _ body: @escaping (LuaCall) throws -> Transform) {
            tr.function(name, sig, summary) { c in try c.push(object: LuaTransform(try body(c))); return 1 }
        }
        make("compose", "transforms.compose{t1, t2, ...} -> Transform", "applies the transforms in order") { c in
            try c.table(1)
            let n = lua_rawlen(c.L, 1)
            var ts: [Transform] = []
            for k in 0..<Int(n) {
                lua_rawgeti(c.L, 1, lua_Integer(k + 1))
                defer { c.pop() }
                guard let t = c.toObject(-1, LuaTransform.self) else { throw c.argError(1, message: "entry \(k + 1) is not a Transform") }
                ts.append(t.transform)
            }
            return Compose(ts)
        }
        make("resize", "transforms.resize(size | {h, w} [, {antialias=true}]) -> Transform", "bilinear resize (an int resizes the smaller edge)") { c in
            let o = try c.options(2)
            let aa = try o.bool("antialias", default: true)
            try o.finish()
            if c.type(1) == LUA_TTABLE {
                let hw = try c.intArray(1, what: "size")
                guard hw.count == 2 else { throw c.argError(1, message: "size must be {height, width}") }
                return try Resize(height: hw[0], width: hw[1], antialias: aa)
            }
            return try Resize(try c.int(1), antialias: aa)
        }
        make("center_crop", "transforms.center_crop(size) -> Transform", "central size x size crop") { c in try CenterCrop(try c.int(1)) }
        make("hflip", "transforms.hflip([p=0.5]) -> Transform", "random horizontal flip with probability p") { c in
            let p = try c.optNumber(1) ?? 0.5
            guard p >= 0 && p <= 1 else { throw c.argError(1, message: "p must be in [0, 1]") }
            return RandomHorizontalFlip(p: p)
        }
        make("rotate", "transforms.rotate(degrees [, {fill=0}]) -> Transform", "random rotation within +-degrees (nearest, fill 0)") { c in
            let o = try c.options(2)
            let fill = try o.float("fill", default: 0)
            try o.finish()
            return try RandomRotation(try c.number(1), fill: fill)
        }
        make("random_crop", "transforms.random_crop(size [, {padding=0, pad_if_needed=false, fill=0}]) -> Transform", "random size x size crop after zero padding") { c in
            let size = try c.int(1)
            let o = try c.options(2)
            let pad = try o.int("padding", default: 0)
            let pin = try o.bool("pad_if_needed", default: false)
            let fill = try o.float("fill", default: 0)
            try o.finish()
            return try RandomCrop(size, padding: pad, padIfNeeded: pin, fill: fill)
        }
        make("color_jitter", "transforms.color_jitter{brightness=0, contrast=0, saturation=0, hue=0} -> Transform", "torchvision's ColorJitter") { c in
            let o = try c.options(1)
            let b = try o.number("brightness") ?? 0, ct = try o.number("contrast") ?? 0, s = try o.number("saturation") ?? 0, h = try o.number("hue") ?? 0
            try o.finish()
            return try ColorJitter(brightness: b, contrast: ct, saturation: s, hue: h)
        }
        make("normalize", "transforms.normalize{mean={...}, std={...}} -> Transform", "(x - mean) / std per channel") { c in
            let o = try c.options(1)
            func floats(_ k: String) throws -> [Float] {
                guard let v = try o.numbers(k) else { throw LuaError("\(c.name): option '\(k)' (a table of numbers) is required") }
                return v.map(Float.init)
            }
            let m = try floats("mean"), s = try floats("std")
            try o.finish()
            guard m.count == s.count, !m.isEmpty, s.allSatisfy({ $0 != 0 }) else { throw LuaError("\(c.name): mean and std need the same non-zero length and std no zeros") }
            return Normalize(mean: m, std: s)
        }
    }
}
