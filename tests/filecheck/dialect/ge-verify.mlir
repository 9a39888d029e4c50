// RUN: wrc-opt %s --split-input-file --verify-diagnostics | filecheck %s

// One case per verifier error of every op of the ge dialect; each CHECK is the exact
// diagnostic. (Custom syntax where it can express the error, generic form otherwise.)

// ge.data

%0 = ge.data "" index 0 : tensor<2xf32>
// CHECK: ge.data: the input name must not be empty

// -----
%0 = ge.data "x" index -1 : tensor<2xf32>
// CHECK: ge.data: the input index must be non-negative

// -----
%0 = ge.data "x" index 0 : memref<2xf32>
// CHECK: Unexpected attribute memref<2xf32>

// -----
// ge.const

%0 = ge.const "" : tensor<2xf32>
// CHECK: ge.const: the constant name must not be empty

// -----
%0 = ge.const "c" : tensor<?x2xf32>
// CHECK: ge.const "c": a constant must have a static shape

// -----
%0 = "ge.const"() <{name = "c", value = dense<1.0> : tensor<2xf32>}> : () -> tensor<3xf32>
// CHECK: ge.const "c": value type tensor<2xf32> differs from result type tensor<3xf32>

// -----
// ge.variable

ge.variable @v : tensor<?x2xf32>
// CHECK: ge.variable @v: a variable must have a static shape

// -----
ge.variable @v : tensor<2xf32> {init = "c", init_value = dense<1.0> : tensor<3xf32>}
// CHECK: ge.variable @v: init_value type tensor<3xf32> differs from tensor<2xf32>

// -----
// ge.read_variable

%0 = ge.read_variable @missing : tensor<2xf32>
// CHECK: ge.read_variable: '@missing' is not a ge.variable

// -----
func.func @f() {
  %0 = ge.read_variable @f : tensor<2xf32>
  func.return
}
// CHECK: ge.read_variable: '@f' is not a ge.variable

// -----
ge.variable @v : tensor<2xf32>
%0 = ge.read_variable @v : tensor<3xf32>
// CHECK: ge.read_variable: result type tensor<3xf32> differs from @v's type tensor<2xf32>

// -----
ge.variable @v : tensor<2xf32>
%0 = ge.read_variable @v : tensor<2xf16>
// CHECK: ge.read_variable: result type tensor<2xf16> differs from @v's type tensor<2xf32>

// -----
// ge.assign

%0 = ge.data "x" index 0 : tensor<2xf32>
ge.assign @missing, %0 : tensor<2xf32>
// CHECK: ge.assign: '@missing' is not a ge.variable

// -----
ge.variable @v : tensor<2xf32>
%0 = ge.data "x" index 0 : tensor<3xf32>
ge.assign @v, %0 {name = "c_assign"} : tensor<3xf32>
// CHECK: ge.assign: value type tensor<3xf32> differs from @v's type tensor<2xf32>

// -----
// ge.assign_if_nonempty

%0 = ge.data "x" index 0 : tensor<*xf32>
ge.assign_if_nonempty @missing, %0 : tensor<*xf32>
// CHECK: ge.assign_if_nonempty: '@missing' is not a ge.variable

// -----
ge.variable @v : tensor<2xf32>
%0 = ge.data "x" index 0 : tensor<*xi32>
ge.assign_if_nonempty @v, %0 : tensor<*xi32>
// CHECK: ge.assign_if_nonempty: element type i32 differs from @v's f32

// -----
ge.variable @v : tensor<2xf32>
%0 = ge.data "x" index 0 : tensor<2x1xf32>
ge.assign_if_nonempty @v, %0 : tensor<2x1xf32>
// CHECK: ge.assign_if_nonempty: shape [2, 1] differs from @v's [2]

// -----
ge.variable @v : tensor<2x3xf32>
%0 = ge.data "x" index 0 : tensor<2x4xf32>
ge.assign_if_nonempty @v, %0 : tensor<2x4xf32>
// CHECK: ge.assign_if_nonempty: shape [2, 4] differs from @v's [2, 3]

// -----
// elementwise binary ops

%0 = ge.data "x" index 0 : tensor<2x3xf32>
%1 = ge.data "y" index 1 : tensor<4xf32>
%2 = ge.add %0, %1 : (tensor<2x3xf32>, tensor<4xf32>) -> tensor<2x3xf32>
// CHECK: ge.add: shapes [2, 3] and [4] do not broadcast

// -----
%0 = ge.data "x" index 0 : tensor<2x3xf32>
%1 = ge.data "y" index 1 : tensor<3xf16>
%2 = ge.sub %0, %1 : (tensor<2x3xf32>, tensor<3xf16>) -> tensor<2x3xf32>
// CHECK: ge.sub: element types f32 and f16 differ

// -----
%0 = ge.data "x" index 0 : tensor<2x3xf32>
%1 = ge.data "y" index 1 : tensor<3xf32>
%2 = ge.mul %0, %1 : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<3x3xf32>
// CHECK: ge.mul: result shape [3, 3] does not match the inferred shape [2, 3]

// -----
%0 = ge.data "x" index 0 : tensor<2x3xi32>
%1 = ge.div %0, %0 : (tensor<2x3xi32>, tensor<2x3xi32>) -> tensor<2x3xf32>
// CHECK: ge.div: result element type f32 should be i32

// -----
// elementwise unary ops

%0 = ge.data "x" index 0 : tensor<2x3xi32>
%1 = ge.relu %0 : tensor<2x3xi32>
// CHECK: ge.relu: expects a floating-point tensor, got tensor<2x3xi32>

// -----
%0 = ge.data "x" index 0 : tensor<2x3xi32>
%1 = ge.sigmoid %0 : tensor<2x3xi32>
// CHECK: ge.sigmoid: expects a floating-point tensor, got tensor<2x3xi32>

// -----
%0 = ge.data "x" index 0 : tensor<2x3xi32>
%1 = ge.tanh %0 : tensor<2x3xi32>
// CHECK: ge.tanh: expects a floating-point tensor, got tensor<2x3xi32>

// -----
%0 = ge.data "x" index 0 : tensor<2x3xi32>
%1 = ge.exp %0 : tensor<2x3xi32>
// CHECK: ge.exp: expects a floating-point tensor, got tensor<2x3xi32>

// -----
%0 = ge.data "x" index 0 : tensor<2x3xf32>
%1 = "ge.relu"(%0) : (tensor<2x3xf32>) -> tensor<3x2xf32>
// CHECK: result 'output' at position 0 does not verify:
// CHECK-NEXT: attribute tensor<2x3xf32> expected from variable 'T', but got tensor<3x2xf32>

// -----
// ge.softmax

%0 = ge.data "x" index 0 : tensor<2x3xf32>
%1 = ge.softmax %0 {axis = 2 : i64} : tensor<2x3xf32>
// CHECK: ge.softmax: axis 2 is out of range for rank 2

// -----
%0 = ge.data "x" index 0 : tensor<2x3xf32>
%1 = ge.softmax %0 {axis = -3 : i64} : tensor<2x3xf32>
// CHECK: ge.softmax: axis -3 is out of range for rank 2

// -----
%0 = ge.data "x" index 0 : tensor<2x3xi32>
%1 = ge.softmax %0 {axis = 1 : i64} : tensor<2x3xi32>
// CHECK: ge.softmax: expects a floating-point tensor, got tensor<2x3xi32>

// -----
// ge.matmul

%0 = ge.data "a" index 0 : tensor<2x3xf32>
%1 = ge.data "b" index 1 : tensor<4x5xf32>
%2 = ge.matmul %0, %1 : (tensor<2x3xf32>, tensor<4x5xf32>) -> tensor<2x5xf32>
// CHECK: ge.matmul: contraction dims differ: [2, 3] x [4, 5]

// -----
%0 = ge.data "a" index 0 : tensor<3xf32>
%1 = ge.data "b" index 1 : tensor<3x5xf32>
%2 = ge.matmul %0, %1 : (tensor<3xf32>, tensor<3x5xf32>) -> tensor<5xf32>
// CHECK: ge.matmul: expects operands of equal rank >= 2, got [3] and [3, 5]

// -----
%0 = ge.data "a" index 0 : tensor<2x2x3xf32>
%1 = ge.data "b" index 1 : tensor<3x5xf32>
%2 = ge.matmul %0, %1 : (tensor<2x2x3xf32>, tensor<3x5xf32>) -> tensor<2x2x5xf32>
// CHECK: ge.matmul: expects operands of equal rank >= 2, got [2, 2, 3] and [3, 5]

// -----
%0 = ge.data "a" index 0 : tensor<2x2x3xf32>
%1 = ge.data "b" index 1 : tensor<4x3x5xf32>
%2 = ge.matmul %0, %1 : (tensor<2x2x3xf32>, tensor<4x3x5xf32>) -> tensor<2x2x5xf32>
// CHECK: ge.matmul: batch dims differ: [2, 2, 3] x [4, 3, 5]

// -----
%0 = ge.data "a" index 0 : tensor<2x3xf32>
%1 = ge.data "b" index 1 : tensor<3x5xf16>
%2 = ge.matmul %0, %1 : (tensor<2x3xf32>, tensor<3x5xf16>) -> tensor<2x5xf32>
// CHECK: ge.matmul: element types f32 and f16 differ

// -----
%0 = ge.data "a" index 0 : tensor<2x3xf32>
%1 = ge.data "b" index 1 : tensor<3x5xf32>
%2 = ge.matmul %0, %1 : (tensor<2x3xf32>, tensor<3x5xf32>) -> tensor<2x4xf32>
// CHECK: ge.matmul: result shape [2, 4] does not match the inferred shape [2, 5]

// -----
// ge.reshape

%0 = ge.data "x" index 0 : tensor<2x6xf32>
%1 = ge.reshape %0 : tensor<2x6xf32> -> tensor<5x3xf32>
// CHECK: ge.reshape: cannot reshape [2, 6] (12 elements) to [5, 3] (15 elements)

// -----
%0 = ge.data "x" index 0 : tensor<2x6xf32>
%1 = ge.reshape %0 : tensor<2x6xf32> -> tensor<3x4xf16>
// CHECK: ge.reshape: result element type f16 should be f32

// -----
%0 = ge.data "x" index 0 : tensor<2x3xf32>
%1 = ge.reshape %0 : tensor<2x3xf32> -> tensor<0x3xf32>
// CHECK: ge.reshape: cannot reshape [2, 3] to the empty [0, 3]

// -----
// ge.transpose

%0 = ge.data "x" index 0 : tensor<2x3xf32>
%1 = ge.transpose %0 {perm = array<i64: 0, 0>} : tensor<2x3xf32> -> tensor<2x2xf32>
// CHECK: ge.transpose: perm [0, 0] is not a permutation of the 2 dims of [2, 3]

// -----
%0 = ge.data "x" index 0 : tensor<2x3xf32>
%1 = ge.transpose %0 {perm = array<i64: 1, 0, 2>} : tensor<2x3xf32> -> tensor<3x2xf32>
// CHECK: ge.transpose: perm [1, 0, 2] is not a permutation of the 2 dims of [2, 3]

// -----
%0 = ge.data "x" index 0 : tensor<2x3xf32>
%1 = ge.transpose %0 {perm = array<i64: 1, 0>} : tensor<2x3xf32> -> tensor<2x3xf32>
// CHECK: ge.transpose: result shape [2, 3] does not match the inferred shape [3, 2]

// -----
// ge.conv2d

%0 = ge.data "x" index 0 : tensor<3x8x8xf32>
%1 = ge.const "w" : tensor<4x3x3x3xf32>
%2 = ge.conv2d %0, %1 {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<4x6x6xf32>
// CHECK: ge.conv2d: expects a 4-D NCHW input and a 4-D FCHW filter, got [3, 8, 8] and [4, 3, 3, 3]

// -----
%0 = ge.data "x" index 0 : tensor<1x3x8x8xf32>
%1 = ge.const "w" : tensor<4x3x3x3xf16>
%2 = ge.conv2d %0, %1 {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf16>) -> tensor<1x4x6x6xf32>
// CHECK: ge.conv2d: element types f32 and f16 differ

// -----
%0 = ge.data "x" index 0 : tensor<1x3x8x8xf32>
%1 = ge.const "w" : tensor<4x2x3x3xf32>
%2 = ge.conv2d %0, %1 {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x3x8x8xf32>, tensor<4x2x3x3xf32>) -> tensor<1x4x6x6xf32>
// CHECK: ge.conv2d: input channels 3 / groups 1 must equal the filter's 2 (input [1, 3, 8, 8], filter [4, 2, 3, 3])

// -----
%0 = ge.data "x" index 0 : tensor<1x4x8x8xf32>
%1 = ge.const "w" : tensor<3x2x3x3xf32>
%2 = ge.conv2d %0, %1 {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 2 : i64} : (tensor<1x4x8x8xf32>, tensor<3x2x3x3xf32>) -> tensor<1x3x6x6xf32>
// CHECK: ge.conv2d: filter count 3 is not divisible by groups 2

// -----
%0 = ge.data "x" index 0 : tensor<1x3x8x8xf32>
%1 = ge.const "w" : tensor<4x3x3x3xf32>
%2 = ge.conv2d %0, %1 {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 0 : i64} : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x6x6xf32>
// CHECK: ge.conv2d: groups must be positive, got 0

// -----
%0 = ge.data "x" index 0 : tensor<1x3x2x2xf32>
%1 = ge.const "w" : tensor<4x3x3x3xf32>
%2 = ge.conv2d %0, %1 {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x3x2x2xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x1x1xf32>
// CHECK: ge.conv2d: window of extent 3 does not fit input size 2 with padding 0

// -----
%0 = ge.data "x" index 0 : tensor<1x3x8x8xf32>
%1 = ge.const "w" : tensor<4x3x3x3xf32>
%2 = ge.conv2d %0, %1 {strides = array<i64: 1, 1>, pads = array<i64: 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x6x6xf32>
// CHECK: ge.conv2d: expects 2 kernel sizes, 2 strides, 2 dilations and 4 pads (top, left, bottom, right)

// -----
%0 = ge.data "x" index 0 : tensor<1x3x8x8xf32>
%1 = ge.const "w" : tensor<4x3x3x3xf32>
%2 = ge.conv2d %0, %1 {strides = array<i64: 0, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x6x6xf32>
// CHECK: ge.conv2d: kernel sizes, strides and dilations must be positive

// -----
%0 = ge.data "x" index 0 : tensor<1x3x8x8xf32>
%1 = ge.const "w" : tensor<4x3x3x3xf32>
%2 = ge.conv2d %0, %1 {strides = array<i64: 1, 1>, pads = array<i64: 0, -1, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x6x6xf32>
// CHECK: ge.conv2d: pads must be non-negative

// -----
%0 = ge.data "x" index 0 : tensor<1x3x8x8xf32>
%1 = ge.const "w" : tensor<4x3x3x3xf32>
%2 = ge.conv2d %0, %1 {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x6x6xf32>
// CHECK: ge.conv2d: result shape [1, 4, 6, 6] does not match the inferred shape [1, 4, 8, 8]

// -----
// ge.max_pool2d / ge.avg_pool2d

%0 = ge.data "x" index 0 : tensor<3x8x8xf32>
%1 = ge.max_pool2d %0 {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 0>} : tensor<3x8x8xf32> -> tensor<3x4x4xf32>
// CHECK: ge.max_pool2d: expects a 4-D NCHW input, got [3, 8, 8]

// -----
%0 = ge.data "x" index 0 : tensor<1x3x8x8xi32>
%1 = ge.max_pool2d %0 {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 0>} : tensor<1x3x8x8xi32> -> tensor<1x3x4x4xi32>
// CHECK: ge.max_pool2d: expects a floating-point tensor, got tensor<1x3x8x8xi32>

// -----
%0 = ge.data "x" index 0 : tensor<1x3x8x8xf32>
%1 = ge.max_pool2d %0 {kernel = array<i64: 2>, strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 0>} : tensor<1x3x8x8xf32> -> tensor<1x3x4x4xf32>
// CHECK: ge.max_pool2d: expects 2 kernel sizes, 2 strides, 2 dilations and 4 pads (top, left, bottom, right)

// -----
%0 = ge.data "x" index 0 : tensor<1x3x8x8xf32>
%1 = ge.max_pool2d %0 {kernel = array<i64: 2, 2>, strides = array<i64: 2, -2>, pads = array<i64: 0, 0, 0, 0>} : tensor<1x3x8x8xf32> -> tensor<1x3x4x4xf32>
// CHECK: ge.max_pool2d: kernel sizes, strides and dilations must be positive

// -----
%0 = ge.data "x" index 0 : tensor<1x3x8x8xf32>
%1 = ge.max_pool2d %0 {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, pads = array<i64: 2, 0, 0, 0>} : tensor<1x3x8x8xf32> -> tensor<1x3x5x4xf32>
// CHECK: ge.max_pool2d: pads [2, 0, 0, 0] must be smaller than the kernel [2, 2]

// -----
%0 = ge.data "x" index 0 : tensor<1x3x2x2xf32>
%1 = ge.avg_pool2d %0 {kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, count_include_pad = 0 : i64} : tensor<1x3x2x2xf32> -> tensor<1x3x1x1xf32>
// CHECK: ge.avg_pool2d: window of extent 3 does not fit input size 2 with padding 0

// -----
%0 = ge.data "x" index 0 : tensor<1x3x8x8xf32>
%1 = ge.avg_pool2d %0 {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 0>, count_include_pad = 0 : i64} : tensor<1x3x8x8xf32> -> tensor<1x3x8x8xf32>
// CHECK: ge.avg_pool2d: result shape [1, 3, 8, 8] does not match the inferred shape [1, 3, 4, 4]

// -----
// ge.global_avg_pool

%0 = ge.data "x" index 0 : tensor<3x8xf32>
%1 = ge.global_avg_pool %0 : tensor<3x8xf32> -> tensor<3x1xf32>
// CHECK: ge.global_avg_pool: expects an N x C x spatial... input, got [3, 8]

// -----
%0 = ge.data "x" index 0 : tensor<1x3x8x8xi32>
%1 = ge.global_avg_pool %0 : tensor<1x3x8x8xi32> -> tensor<1x3x1x1xi32>
// CHECK: ge.global_avg_pool: expects a floating-point tensor, got tensor<1x3x8x8xi32>

// -----
%0 = ge.data "x" index 0 : tensor<1x3x8x8xf32>
%1 = ge.global_avg_pool %0 : tensor<1x3x8x8xf32> -> tensor<1x3xf32>
// CHECK: ge.global_avg_pool: result shape [1, 3] does not match the inferred shape [1, 3, 1, 1]

// -----
// ge.reduce_sum / ge.reduce_mean

%0 = ge.data "x" index 0 : tensor<4x3xf32>
%1 = ge.reduce_sum %0 {axes = array<i64: 2>, keepdims = 0 : i64} : tensor<4x3xf32> -> tensor<4xf32>
// CHECK: ge.reduce_sum: axis 2 is out of range for rank 2

// -----
%0 = ge.data "x" index 0 : tensor<4x3xf32>
%1 = ge.reduce_sum %0 {axes = array<i64: 1, -1>, keepdims = 0 : i64} : tensor<4x3xf32> -> tensor<4xf32>
// CHECK: ge.reduce_sum: axes [1, -1] must be non-empty and distinct

// -----
%0 = ge.data "x" index 0 : tensor<4x3xf32>
%1 = ge.reduce_mean %0 {axes = array<i64>, keepdims = 0 : i64} : tensor<4x3xf32> -> tensor<4x3xf32>
// CHECK: ge.reduce_mean: axes [] must be non-empty and distinct

// -----
%0 = ge.data "x" index 0 : tensor<4x3xf32>
%1 = ge.reduce_mean %0 {axes = array<i64: 1>, keepdims = 1 : i64} : tensor<4x3xf32> -> tensor<4xf32>
// CHECK: ge.reduce_mean: result shape [4] does not match the inferred shape [4, 1]
