#include "kernels/sparse_conv_cpu.h"

#include <algorithm>
#include <vector>

#include "kernels/cpu_loops.h"
#include "kernels/input_staging.h"
#include "kernels/jit_walks.h"

namespace onnx_sparsify {
namespace {

constexpr int64_t kPositionBlock = kTile;          // virtual positions per loop task
constexpr int64_t kMinTasks = 16;                  // tasks per call worth splitting channel blocks for
constexpr int64_t kGroupBufferBytes = 512 * 1024;  // kGroups where a group's padded input fits this
constexpr int64_t kBeyondL2Bytes = 1536 * 1024;    // group inputs larger than this: kBlocksBeyondL2
constexpr int64_t kSerialWork = 1 << 17;  // multiply-adds (nnz x output positions) below which a call runs serially

int64_t GroupBytes(const ConvGeometry& g) {
  return g.in_channels_per_group * g.layout.channel_stride * int64_t{sizeof(float)};
}

// A channel's virtual positions up to its last output.
int64_t VirtualLength(const ConvGeometry& g) {
  const PhaseLayout& l = g.layout;
  return ((g.axes[0].out - 1) * l.extent[1] + (g.axes[1].out - 1)) * l.extent[2] + g.axes[2].out;
}

// The input of group `group` of image n in the staged input `src`.
TaskInput GroupInput(const ConvGeometry& g, const float* src, int64_t n, int64_t group) {
  return {src + (n * g.in_channels + group * g.in_channels_per_group) * g.layout.channel_stride, g.layout.copy,
          VirtualLength(g)};
}

// kWindows: one task per window of kJitTaskPositions outputs, of one group of one image.
void RunWindows(const CpuCall& call, const JitTiles& code, const float* x, const ParallelFor& parallel_for) {
  const ConvGeometry& g = call.g;
  const int64_t stride = JitWindowStride(g), columns = g.axes[2].out;
  const int64_t windows = (columns + kJitTaskPositions - 1) / kJitTaskPositions;
  parallel_for(g.batch * g.group * windows, [&](int64_t task) {
    const int64_t w = task % windows, group = (task / windows) % g.group, n = task / (windows * g.group);
    const int64_t c_begin = w * kJitTaskPositions, c_end = std::min(columns, c_begin + kJitTaskPositions);
    const TaskInput input{StageWindows(g, x, n, group, c_begin, stride), true, stride};
    // The window starts at output column c_begin: Y and Z are addressed from there on.
    CpuCall shifted = call;
    shifted.y += c_begin;
    if (shifted.residual) shifted.residual += c_begin;
    for (int64_t b = 0; b < code.blocks_per_group(); ++b) {
      ComputeJit(shifted, code, code.block(group * code.blocks_per_group() + b), JitWalk::kRows, input, n, {0, 1},
                 {0, c_end - c_begin});
    }
  });
}

// kGroups: each task pads one group into its thread's buffer and computes its outputs.
void RunGroups(const CpuCall& call, const JitTiles* code, const float* x, const ParallelFor& parallel_for) {
  const ConvGeometry& g = call.g;
  parallel_for(g.batch * g.group, [&](int64_t task) {
    const int64_t n = task / g.group, group = task % g.group;
    const TaskInput input{StageGroup(call.k, g, x, n, group), true, VirtualLength(g)};
    if (code) {
      const JitWalk walk = JitWalkFor(g);
      const JitGrid grid = JitGridFor(g, walk, input.length);
      for (int64_t b = 0; b < code->blocks_per_group(); ++b) {
        ComputeJit(call, *code, code->block(group * code->blocks_per_group() + b), walk, input, n, {0, grid.rows},
                   {0, grid.columns});
      }
      return;
    }
    const int64_t m_begin = group * g.out_channels_per_group;
    ComputeBlock(call, input, CpuWeights::kBlocksInL2, n, {m_begin, m_begin + g.out_channels_per_group},
                 {0, input.length});
  });
}

// kGenerated: tasks of about kJitTaskPositions outputs (kVirtual: kPositionBlock), whole rows or
// a row in chunks. Generated blocks vary fastest: consecutive tasks read the same input window.
void RunGenerated(const CpuCall& call, const JitTiles& code, const float* src, const ParallelFor& parallel_for) {
  const ConvGeometry& g = call.g;
  const JitWalk walk = JitWalkFor(g);
  const int64_t blocks = code.block_count();
  const JitGrid grid = JitGridFor(g, walk, VirtualLength(g));
  const int64_t task_positions = walk == JitWalk::kVirtual ? kPositionBlock : kJitTaskPositions;
  const int64_t row_block = std::max<int64_t>(1, task_positions / grid.columns);
  const int64_t column_block = std::min(grid.columns, task_positions);
  const int64_t row_blocks = (grid.rows + row_block - 1) / row_block;
  const int64_t column_blocks = (grid.columns + column_block - 1) / column_block;
  parallel_for(g.batch * blocks * row_blocks * column_blocks, [&](int64_t task) {
    const JitTiles::Block& block = code.block(task % blocks);
    int64_t rest = task / blocks;
    const int64_t cb = rest % column_blocks;
    rest /= column_blocks;
    const int64_t rb = rest % row_blocks, n = rest / row_blocks;
    const int64_t c_begin = cb * column_block;
    ComputeJit(call, code, block, walk, GroupInput(g, src, n, block.m_begin / g.out_channels_per_group), n,
               {rb * row_block, std::min(grid.rows, (rb + 1) * row_block)},
               {c_begin, std::min(grid.columns, c_begin + column_block)});
  });
}

// kTiles: large channel blocks reuse each input window most; smaller ones when needed to give the
// thread pool enough tasks.
void RunTiles(const CpuCall& call, const float* src, const ParallelFor& parallel_for) {
  const ConvGeometry& g = call.g;
  const int64_t length = VirtualLength(g);
  const int64_t position_blocks = (length + kPositionBlock - 1) / kPositionBlock;
  int64_t channel_block = std::min(g.out_channels_per_group, kChannelBlock);
  while (channel_block > 8 &&
         g.batch * g.group * ((g.out_channels_per_group + channel_block - 1) / channel_block) * position_blocks <
             kMinTasks) {
    channel_block /= 2;
  }
  const int64_t blocks_per_group = (g.out_channels_per_group + channel_block - 1) / channel_block;
  // Finer input-channel blocks where a group's input exceeds L2 (R2 at 70% zeros: 1.3-1.46x; at
  // 90% the plans agree); elsewhere they cost more partial sums than they save (R4: 0.88x).
  const int block_plan = GroupBytes(g) > kBeyondL2Bytes ? CpuWeights::kBlocksBeyondL2 : CpuWeights::kBlocksInL2;
  const int64_t channel_blocks = g.group * blocks_per_group;
  parallel_for(g.batch * channel_blocks * position_blocks, [&](int64_t task) {
    // Channel blocks vary fastest: consecutive tasks read the same input window from cache.
    const int64_t cb = task % channel_blocks;
    const int64_t pb = (task / channel_blocks) % position_blocks;
    const int64_t n = task / (position_blocks * channel_blocks);
    const int64_t group = cb / blocks_per_group;
    const int64_t m_begin = group * g.out_channels_per_group + (cb % blocks_per_group) * channel_block;
    const int64_t m_end = std::min((group + 1) * g.out_channels_per_group, m_begin + channel_block);
    const int64_t p_begin = pb * kPositionBlock;
    ComputeBlock(call, GroupInput(g, src, n, group), block_plan, n, {m_begin, m_end},
                 {p_begin, std::min(length, p_begin + kPositionBlock)});
  });
}

}  // namespace

void SerialFor(int64_t total, const std::function<void(int64_t)>& body) {
  for (int64_t i = 0; i < total; ++i) body(i);
}

const char* CpuPathName(CpuPath path) {
  switch (path) {
    case CpuPath::kPlanes: return "planes";
    case CpuPath::kWindows: return "windows";
    case CpuPath::kGroups: return "groups";
    case CpuPath::kGenerated: return "generated";
    case CpuPath::kTiles: return "tiles";
  }
  return "tiles";
}

CpuPath ChooseCpuPath(const ConvGeometry& g, const CpuWeights& weights, const JitTiles* code) {
  const PhaseLayout& l = g.layout;
  if (UsesPlanePath(l.phases == 1, weights.nnz(), g.out_channels, g.out_plane)) return CpuPath::kPlanes;
  if (code && JitWalkFor(g) == JitWalk::kWindows) return CpuPath::kWindows;
  if (l.copy && g.group > 1 && GroupBytes(g) <= kGroupBufferBytes) return CpuPath::kGroups;
  return code ? CpuPath::kGenerated : CpuPath::kTiles;
}

void SparseConvCpu(const CpuPlan& plan, const ConvAttributes& attrs, const CpuWeights& weights, const float* bias,
                   const float* residual, const ConvGeometry& g, const float* x, float* y,
                   const ParallelFor& pool_for, const ScratchAllocator& scratch) {
  if (g.out_elements == 0) return;
  // A small layer (under kSerialWork multiply-adds, a few microseconds) runs on the calling
  // thread: handing it to the pool's threads would cost about as much as the work itself.
  // Both factors below kSerialWork before multiplying: the product cannot overflow.
  const int64_t positions = g.out_elements / std::max<int64_t>(g.out_channels, 1);
  const bool small = weights.nnz() < kSerialWork && positions < kSerialWork && weights.nnz() * positions < kSerialWork;
  const ParallelFor serial_for = SerialFor;
  const ParallelFor& parallel_for = small ? serial_for : pool_for;

  const JitTiles* code = plan.CodeFor(g);
  const CpuPath path = ChooseCpuPath(g, weights, code);
  // Offsets for this call's layout where the plan was made for another (the plane path reads
  // none).
  std::vector<int64_t> call_offsets;
  const bool served = plan.Serves(g);
  if (!served && path != CpuPath::kPlanes) call_offsets = TapOffsets(weights, g.layout);
  const int64_t* offsets = served ? plan.offsets().data() : call_offsets.data();
  const CpuCall call{attrs, weights, g, KernelsFor(plan.isa()), offsets, bias, residual, y};
  switch (path) {
    case CpuPath::kPlanes: return ComputePlanes(call, x, parallel_for);
    case CpuPath::kWindows: return RunWindows(call, *code, x, parallel_for);
    case CpuPath::kGroups: return RunGroups(call, code, x, parallel_for);
    case CpuPath::kGenerated: return RunGenerated(call, *code, StageInput(call.k, g, x, parallel_for, scratch), parallel_for);
    case CpuPath::kTiles: return RunTiles(call, StageInput(call.k, g, x, parallel_for, scratch), parallel_for);
  }
}

}  // namespace onnx_sparsify
