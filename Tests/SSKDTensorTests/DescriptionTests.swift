import XCTest
import SSKDTensor

/// Printing matches PyTorch's repr (expected strings taken from torch 2.x with default options).
final class DescriptionTests: XCTestCase {
    func testSmallTensors() throws {
        XCTAssertEqual(try Tensor([1.5, -2.25, 3.0]).description, "tensor([ 1.5000, -2.2500,  3.0000])")
        XCTAssertEqual(try Tensor([1, 2, -3]).description, "tensor([ 1.,  2., -3.])")
        XCTAssertEqual(try Tensor.scalar(3.14159).description, "tensor(3.1416)")
        XCTAssertEqual(try Tensor.scalar(2).description, "tensor(2.)")
        XCTAssertEqual(try Tensor([1.5, -2.0, 0.25, 10.125], shape: [2, 2]).description,
                       "tensor([[ 1.5000, -2.0000],\n        [ 0.2500, 10.1250]])")
        XCTAssertEqual(try Tensor([1e-5, 1.0, 100.0]).description, "tensor([1.0000e-05, 1.0000e+00, 1.0000e+02])")
        XCTAssertEqual(try Tensor([.nan, 1, .infinity]).description, "tensor([nan, 1., inf])")
        XCTAssertEqual(try Tensor.zeros([0]).description, "tensor([])")
        XCTAssertEqual(try Tensor.zeros([0, 3]).description, "tensor([], size=(0, 3))")
        XCTAssertEqual(try Tensor.arange(10).description, "tensor([0., 1., 2., 3., 4., 5., 6., 7., 8., 9.])")
        XCTAssertEqual(try Tensor.arange(8).reshape([2, 2, 2]).description,
                       "tensor([[[0., 1.],\n         [2., 3.]],\n\n        [[4., 5.],\n         [6., 7.]]])")
    }

    func testLongRowsWrapAt80Columns() throws {
        let t = try Tensor.arange(30) / 7
        XCTAssertEqual(t.description, """
            tensor([0.0000, 0.1429, 0.2857, 0.4286, 0.5714, 0.7143, 0.8571, 1.0000, 1.1429,
                    1.2857, 1.4286, 1.5714, 1.7143, 1.8571, 2.0000, 2.1429, 2.2857, 2.4286,
                    2.5714, 2.7143, 2.8571, 3.0000, 3.1429, 3.2857, 3.4286, 3.5714, 3.7143,
                    3.8571, 4.0000, 4.1429])
            """)
    }

    func testLargeTensorsAreSummarised() throws {
        XCTAssertEqual(try Tensor.arange(2000).description, """
            tensor([0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 1.9970e+03, 1.9980e+03,
                    1.9990e+03])
            """)
        let t = try (Tensor.arange(3600) / 10).reshape([2, 600, 3])
        XCTAssertEqual(t.description, """
            tensor([[[0.0000e+00, 1.0000e-01, 2.0000e-01],
                     [3.0000e-01, 4.0000e-01, 5.0000e-01],
                     [6.0000e-01, 7.0000e-01, 8.0000e-01],
                     ...,
                     [1.7910e+02, 1.7920e+02, 1.7930e+02],
                     [1.7940e+02, 1.7950e+02, 1.7960e+02],
                     [1.7970e+02, 1.7980e+02, 1.7990e+02]],

                    [[1.8000e+02, 1.8010e+02, 1.8020e+02],
                     [1.8030e+02, 1.8040e+02, 1.8050e+02],
                     [1.8060e+02, 1.8070e+02, 1.8080e+02],
                     ...,
                     [3.5910e+02, 3.5920e+02, 3.5930e+02],
                     [3.5940e+02, 3.5950e+02, 3.5960e+02],
                     [3.5970e+02, 3.5980e+02, 3.5990e+02]]])
            """)
    }

    func testMoreLayouts() throws {
        XCTAssertEqual(try ((Tensor.arange(2000) - 1000) / 8).description, """
            tensor([-125.0000, -124.8750, -124.7500,  ...,  124.6250,  124.7500,
                     124.8750])
            """)
        let ramp = try Tensor.arange(1600).toArray().map { (Float(Int($0) % 17) - 8) / 4 }
        XCTAssertEqual(try Tensor(ramp, shape: [40, 40]).description, """
            tensor([[-2.0000, -1.7500, -1.5000,  ..., -1.2500, -1.0000, -0.7500],
                    [-0.5000, -0.2500,  0.0000,  ...,  0.2500,  0.5000,  0.7500],
                    [ 1.0000,  1.2500,  1.5000,  ...,  1.7500,  2.0000, -2.0000],
                    ...,
                    [-1.7500, -1.5000, -1.2500,  ..., -1.0000, -0.7500, -0.5000],
                    [-0.2500,  0.0000,  0.2500,  ...,  0.5000,  0.7500,  1.0000],
                    [ 1.2500,  1.5000,  1.7500,  ...,  2.0000, -2.0000, -1.7500]])
            """)
        XCTAssertEqual(try Tensor.zeros([2, 2]).description, "tensor([[0., 0.],\n        [0., 0.]])")
        XCTAssertEqual(try Tensor([-0.5, 123456]).description, "tensor([-5.0000e-01,  1.2346e+05])")
        XCTAssertEqual(try Tensor([1e9, 2]).description, "tensor([1.0000e+09, 2.0000e+00])")
        XCTAssertEqual(try Tensor.zeros([2, 3, 0]).description, "tensor([], size=(2, 3, 0))")
    }

    func testAutogradSuffixes() throws {
        let x = try Tensor([1, 2]).requiringGrad()
        XCTAssertEqual(x.description, "tensor([1., 2.], requires_grad=True)")
        XCTAssertEqual(try (x * 2).description, "tensor([2., 4.], grad_fn=<mul>)")
    }
}
