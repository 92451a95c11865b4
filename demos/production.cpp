#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <ATen/ATen.h>
#include <fstream>

int main(int argc, char* argv[]) {  // MODEL.pt2 IN.bin OUT.bin ROWS COLS
  int64_t rows = std::stoll(argv[4]), cols = std::stoll(argv[5]);
  auto x = at::from_file(argv[2], false, rows * cols).view({rows, cols});
  torch::inductor::AOTIModelPackageLoader model(argv[1]);  // no Python
  auto device = c10::Device(model.get_metadata()["AOTI_DEVICE_KEY"]);
  auto y = model.run({x.to(device)})[0].cpu().contiguous();
  std::ofstream(argv[3], std::ios::binary).write((char*)y.data_ptr(), y.nbytes());
}
