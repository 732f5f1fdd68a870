#include <gtest/gtest.h>

#include "engine/backend.h"
#include "engine/tensor.h"

namespace gpt {

TEST(Tensor, ShapeBasics) {
  Shape s{2, 3, 4};
  EXPECT_EQ(s.ndim(), 3);
  EXPECT_EQ(s.numel(), 24);
  EXPECT_EQ(s.rows(), 6);
  EXPECT_EQ(s.cols(), 4);
  EXPECT_EQ(s.str(), "(2, 3, 4)");
  EXPECT_THROW((Shape{1, 2, 3, 4, 5}), ShapeError);
  EXPECT_THROW(s[3], ShapeError);
  EXPECT_EQ(s[-1], 4);
}

TEST(Tensor, ChecksNameTheArgument) {
  float buf[6];
  Tensor t(buf, DType::f32, {2, 3});
  EXPECT_NO_THROW(check_dtype(t, DType::f32, "inp"));
  try {
    check_dtype(t, DType::bf16, "weight");
    FAIL();
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("weight"), std::string::npos);
  }
  EXPECT_THROW(check_shape(t, Shape{3, 2}, "x"), ShapeError);
  EXPECT_THROW(t.reshape({4, 2}), ShapeError);
  EXPECT_EQ(t.reshape({3, 2}).shape, (Shape{3, 2}));
  EXPECT_EQ(dtype_from_name("bf16"), DType::bf16);
  EXPECT_THROW(dtype_from_name("f16"), std::invalid_argument);
}

// --device/--dtype as the apps take them: auto is f32 on the CPU.
TEST(Backend, FromTheAppsNames) {
  EXPECT_EQ(make_backend_from_names("cpu", "auto")->dtype(), DType::f32);
  EXPECT_EQ(make_backend_from_names("cpu", "f64")->dtype(), DType::f64);
  if (!cuda_available()) {
    EXPECT_EQ(make_backend_from_names("auto", "auto")->dtype(), DType::f32);
  }
  EXPECT_THROW(make_backend_from_names("cpu", "f16"), std::invalid_argument);
  EXPECT_THROW(make_backend_from_names("tpu", "auto"), std::invalid_argument);
}

}  // namespace gpt
