// swift-tools-version:6.0
// sskd: layers import downward only (see README "Architecture").
//   sskd (CLI) -> SSKDLua -> SSKDTrain -> SSKDData, SSKDOptim, SSKDDist -> SSKDNN -> SSKDTensor -> COpenBLAS
//                       \-> SSKDExport (ONNX, over swift-protobuf) -> SSKDNN
//   (SSKDDist imports SSKDTensor only, and Open MPI)
import PackageDescription

// Release builds: AVX2 + FMA (haswell) and no exclusivity checks in the hot loops.
let fast: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", "haswell", "-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]
let fastC: [CSetting] = [
    .unsafeFlags(["-O3", "-march=haswell"], .when(configuration: .release)),
]

let package = Package(
    name: "sskd",
    products: [
        .executable(name: "sskd", targets: ["sskd"]),
        .executable(name: "sskd-fuzz", targets: ["sskd-fuzz"]),
        .library(name: "SSKDTensor", targets: ["SSKDTensor"]),
        .library(name: "SSKDNN", targets: ["SSKDNN"]),
        .library(name: "SSKDLua", targets: ["SSKDLua"]),
        .library(name: "SSKDExport", targets: ["SSKDExport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        // System libraries (Debian: libopenblas-dev, liblua5.4-dev, libpng-dev, libjpeg-dev, zlib1g-dev, libedit-dev, libssl-dev, libopenmpi-dev).
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CLua", pkgConfig: "lua5.4", providers: [.apt(["liblua5.4-dev"])]),
        .systemLibrary(name: "CImageCodecs", providers: [.apt(["libpng-dev", "libjpeg-dev", "zlib1g-dev"])]),
        .systemLibrary(name: "CEditLine", pkgConfig: "libedit", providers: [.apt(["libedit-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),

        // Layers.
        .target(name: "SSKDTensor", dependencies: ["COpenBLAS"], swiftSettings: fast),
        .target(name: "SSKDNN", dependencies: ["SSKDTensor"], swiftSettings: fast),
        .target(name: "SSKDOptim", dependencies: ["SSKDNN", "SSKDTensor"], swiftSettings: fast),
        .target(name: "SSKDData", dependencies: ["SSKDTensor", "CImageCodecs", "CImageDecode"], swiftSettings: fast),
        // Dist: MPI communicator and collectives for data-parallel training (imports Tensor only).
        .target(name: "SSKDDist", dependencies: ["SSKDTensor", "CMPI"], swiftSettings: fast),
        .target(name: "SSKDTrain", dependencies: ["SSKDData", "SSKDOptim", "SSKDNN", "SSKDTensor", "SSKDDist", "CImageCodecs", "COpenSSL"], swiftSettings: fast),
        // ONNX export: the protobuf types are generated from the official onnx.proto3 by
        // scripts/gen_onnx_proto.sh and committed (Generated/).
        .target(name: "SSKDExport", dependencies: ["SSKDNN", "SSKDTensor", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
                swiftSettings: fast),
        // Our own C code: trampolines that raise Lua errors after Swift has returned, and image
        // decoding whose setjmp/longjmp error handling stays inside C.
        .target(name: "CLuaShim", dependencies: ["CLua"], cSettings: fastC),
        .target(name: "CImageDecode", dependencies: ["CImageCodecs"], cSettings: fastC),
        .target(name: "SSKDLua", dependencies: ["CLuaShim", "CLua", "CEditLine", "SSKDExport", "SSKDTrain", "SSKDDist", "SSKDData", "SSKDOptim", "SSKDNN", "SSKDTensor"], swiftSettings: fast),
        .executableTarget(name: "sskd", dependencies: [
            "SSKDLua", "SSKDExport", "SSKDTrain", "SSKDDist", "SSKDData", "SSKDOptim", "SSKDNN", "SSKDTensor",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: fast),
        // libFuzzer harnesses for every reader of outside bytes (scripts/fuzz.sh builds them with
        // -sanitize=fuzzer,address); any other build replays files through them. Corpora: Fuzz/corpus.
        .executableTarget(name: "sskd-fuzz", dependencies: ["SSKDLua", "SSKDTrain", "SSKDData", "SSKDOptim", "SSKDNN", "SSKDTensor", "CImageCodecs"],
                          path: "Fuzz", exclude: ["corpus", "lua_api.lua"]),

        // Tests mirror Sources.
        .testTarget(name: "SSKDTensorTests", dependencies: ["SSKDTensor"], resources: [.copy("Fixtures")]),
        .testTarget(name: "SSKDNNTests", dependencies: ["SSKDNN", "SSKDTensor"], resources: [.copy("Fixtures")]),
        .testTarget(name: "SSKDOptimTests", dependencies: ["SSKDOptim", "SSKDNN", "SSKDTensor"], resources: [.copy("Fixtures")]),
        .testTarget(name: "SSKDDataTests", dependencies: ["SSKDData", "SSKDTensor", "CImageCodecs"], resources: [.copy("Fixtures")]),
        .testTarget(name: "SSKDDistTests", dependencies: ["SSKDDist", "SSKDTensor"]),
        .testTarget(name: "SSKDTrainTests", dependencies: ["SSKDTrain", "SSKDData", "SSKDOptim", "SSKDNN", "SSKDTensor"]),
        .testTarget(name: "SSKDExportTests", dependencies: ["SSKDExport", "SSKDLua", "SSKDTrain", "SSKDData", "SSKDNN", "SSKDTensor"]),
        .testTarget(name: "SSKDLuaTests", dependencies: ["SSKDLua", "SSKDTrain", "SSKDData", "SSKDNN", "SSKDTensor"], resources: [.copy("lua")]),
    ],
    swiftLanguageModes: [.v5]
)
