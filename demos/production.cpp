// Run an AOTInductor package from C++: no Python at run time.
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <ATen/ATen.h>
#include <iostream>

int main(int argc, char* argv[]) {  // MODEL.pt2 INPUT.bin ROWS COLS
  int64_t rows = std::stoll(argv[3]), cols = std::stoll(argv[4]);
  auto input = at::from_file(argv[2], false, rows * cols, at::kFloat);
  torch::inductor::AOTIModelPackageLoader model(argv[1]);
  auto device = c10::Device(model.get_metadata()["AOTI_DEVICE_KEY"]);
  auto y = model.run({input.view({rows, cols}).to(device)})[0].cpu();

  std::cout.precision(9);  // enough digits to round-trip a float32
  for (int64_t i = 0; i < y.size(0); ++i) {
    for (int64_t j = 0; j < y.size(1); ++j)
      std::cout << y[i][j].item<float>() << ' ';
    std::cout << '\n';
  }
}
