/* SPDX-License-Identifier: MIT
 *
 * onnx/ops/op_list.h -- one line per operator: X(OnnxName, c_name), where the
 * operator is defined as `const struct qv_op qv_op_<c_name>` in one of the
 * op_<family>.c files. Sorted by ONNX name in strcmp (byte) order, so
 * uppercase sorts before lowercase ("LRN" < "LeakyRelu"); the unit test
 * tests/unit/onnx/test_op_table.c checks the order and uniqueness.
 */
#ifndef QV_ONNX_OP_LIST_H
#define QV_ONNX_OP_LIST_H

#define QV_ONNX_OPS(X) \
    X(Abs, abs) \
    X(Acos, acos) \
    X(Acosh, acosh) \
    X(Add, add) \
    X(And, and) \
    X(ArgMax, arg_max) \
    X(ArgMin, arg_min) \
    X(Asin, asin) \
    X(Asinh, asinh) \
    X(Atan, atan) \
    X(Atanh, atanh) \
    X(AveragePool, average_pool) \
    X(BatchNormalization, batch_normalization) \
    X(BitShift, bit_shift) \
    X(Cast, cast) \
    X(CastLike, cast_like) \
    X(Ceil, ceil) \
    X(Celu, celu) \
    X(Clip, clip) \
    X(Concat, concat) \
    X(Constant, constant) \
    X(ConstantOfShape, constant_of_shape) \
    X(Conv, conv) \
    X(ConvTranspose, conv_transpose) \
    X(Cos, cos) \
    X(Cosh, cosh) \
    X(CumSum, cum_sum) \
    X(DepthToSpace, depth_to_space) \
    X(Div, div) \
    X(Dropout, dropout) \
    X(Elu, elu) \
    X(Equal, equal) \
    X(Erf, erf) \
    X(Exp, exp) \
    X(Expand, expand) \
    X(EyeLike, eye_like) \
    X(Flatten, flatten) \
    X(Floor, floor) \
    X(Gather, gather) \
    X(GatherElements, gather_elements) \
    X(GatherND, gather_nd) \
    X(Gemm, gemm) \
    X(GlobalAveragePool, global_average_pool) \
    X(GlobalLpPool, global_lp_pool) \
    X(GlobalMaxPool, global_max_pool) \
    X(Greater, greater) \
    X(GreaterOrEqual, greater_or_equal) \
    X(HardSigmoid, hard_sigmoid) \
    X(HardSwish, hard_swish) \
    X(Hardmax, hardmax) \
    X(Identity, identity) \
    X(InstanceNormalization, instance_normalization) \
    X(IsInf, is_inf) \
    X(IsNaN, is_nan) \
    X(LRN, lrn) \
    X(LayerNormalization, layer_normalization) \
    X(LeakyRelu, leaky_relu) \
    X(Less, less) \
    X(LessOrEqual, less_or_equal) \
    X(Log, log) \
    X(LogSoftmax, log_softmax) \
    X(LpPool, lp_pool) \
    X(MatMul, matmul) \
    X(Max, max) \
    X(MaxPool, max_pool) \
    X(Mean, mean) \
    X(Min, min) \
    X(Mod, mod) \
    X(Mul, mul) \
    X(Neg, neg) \
    X(Not, not) \
    X(OneHot, one_hot) \
    X(Or, or) \
    X(PRelu, prelu) \
    X(Pad, pad) \
    X(Pow, pow) \
    X(Range, range) \
    X(Reciprocal, reciprocal) \
    X(ReduceL1, reduce_l1) \
    X(ReduceL2, reduce_l2) \
    X(ReduceLogSum, reduce_log_sum) \
    X(ReduceLogSumExp, reduce_log_sum_exp) \
    X(ReduceMax, reduce_max) \
    X(ReduceMean, reduce_mean) \
    X(ReduceMin, reduce_min) \
    X(ReduceProd, reduce_prod) \
    X(ReduceSum, reduce_sum) \
    X(ReduceSumSquare, reduce_sum_square) \
    X(Relu, relu) \
    X(Reshape, reshape) \
    X(Resize, resize) \
    X(Round, round) \
    X(ScatterElements, scatter_elements) \
    X(ScatterND, scatter_nd) \
    X(Selu, selu) \
    X(Shape, shape) \
    X(Shrink, shrink) \
    X(Sigmoid, sigmoid) \
    X(Sign, sign) \
    X(Sin, sin) \
    X(Sinh, sinh) \
    X(Size, size) \
    X(Slice, slice) \
    X(Softmax, softmax) \
    X(Softplus, softplus) \
    X(Softsign, softsign) \
    X(SpaceToDepth, space_to_depth) \
    X(Split, split) \
    X(Sqrt, sqrt) \
    X(Squeeze, squeeze) \
    X(Sub, sub) \
    X(Sum, sum) \
    X(Tan, tan) \
    X(Tanh, tanh) \
    X(ThresholdedRelu, thresholded_relu) \
    X(Tile, tile) \
    X(TopK, top_k) \
    X(Transpose, transpose) \
    X(Trilu, trilu) \
    X(Unsqueeze, unsqueeze) \
    X(Upsample, upsample) \
    X(Where, where) \
    X(Xor, xor)

#endif /* QV_ONNX_OP_LIST_H */
