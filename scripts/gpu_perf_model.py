#!/usr/bin/env python3
"""The performance model of docs/gpu.md ("Performance model ..."): per-kernel times of one
training step on an H100 SXM and an H200 for the three `bench train` shapes of
scripts/gpu_check.sh, in fp32, tf32 and bf16, with CUDA graphs on and off. Prints the numbers the
docs' tables quote; the assumptions (effective GEMM rates, per-kernel and per-launch costs) are
the constants below, to be revised against the first measured table.
"""
# HBM bandwidth (bytes/s)
gpus = {"H100": 3.35e12, "H200": 4.8e12}
# effective GEMM rates (FLOP/s) on each shape: few output tiles leave SMs idle at small batches
rate = {("A",128): {"fp32":20e12,"tf32":100e12,"bf16":200e12},
        ("A",1024): {"fp32":35e12,"tf32":200e12,"bf16":350e12},
        ("C",512): {"fp32":45e12,"tf32":300e12,"bf16":550e12}}
widths = {"A":[784,512,512,10],"C":[784,2048,2048,10]}
def flops(w):
    f = sum(2*w[i]*w[i+1] for i in range(3))*2 + sum(2*w[i]*w[i+1] for i in range(1,3))
    return f
def nparams(w): return sum(w[i]*w[i+1]+w[i+1] for i in range(3))
# element-wise kernels: 1.5 us each plus their bytes at 75 % of HBM bandwidth; bias + activation
# reads z and writes z and a, activation backward reads d and z and writes d, SGD reads p, g, m
# and writes p, m (bf16: + a bf16 copy of p)
def elem(w,B,bw,prec):
    eff=0.75*bw; k=[]
    k.append(("gather", B*w[0]*4*2))
    for l in range(3): k.append((f"bias_act {l}", 3*B*w[l+1]*4))
    k.append(("loss", B*w[3]*4*2))
    for l in range(3): k.append((f"bias_grad {l}", B*w[l+1]*4))
    for l in (1,2): k.append((f"act_backward {l}", 3*B*w[l]*4))
    k.append(("sgd", nparams(w)*(20+(2 if prec=="bf16" else 0))))
    return [(n, 1.5e-6 + b/eff, b) for n,b in k]
# issuing a step without graphs: 11 kernels at 3 us, 8 cuBLAS GEMMs at 5 us
HOST = 11*3e-6 + 8*5e-6
for (s,B),r in rate.items():
    w=widths[s]; F=flops(w)*B
    for g,bw in gpus.items():
        for p in ("fp32","tf32","bf16"):
            gemm = F/r[p] + 8*2e-6
            el = sum(t for _,t,_ in elem(w,B,bw,p))
            gpu = gemm+el
            # graphs on: one replay (~8 us); off: issuing overlaps the GPU, + one synchronization
            on = gpu+8e-6; off = max(gpu,HOST)+10e-6
            print(f"{s}{B} {g} {p}: gemm {gemm*1e6:.1f} elem {el*1e6:.1f} gpu {gpu*1e6:.1f} | on {on*1e6:.0f}us {B/on/1e6:.2f}M | off {off*1e6:.0f}us {B/off/1e6:.2f}M")
print("host", HOST*1e6, "flops/sample", flops(widths['A']), flops(widths['C']), nparams(widths['A']), nparams(widths['C']))
for n,t,b in elem(widths["A"],128,3.35e12,"fp32"): print("A128",n,round(t*1e6,2),b)
for n,t,b in elem(widths["C"],512,3.35e12,"fp32"): print("C512",n,round(t*1e6,2),b)

# train.gemm_epilogue (cuBLASLt's epilogues, cuda/lt.cu): the bias + activation kernels, the
# activation-backward kernels and the hidden layers' bias-gradient kernels go (7 of the 11; the
# logits' bias gradient stays); the GEMMs write the activation and a 1-bit mask instead of z and
# take an assumed +1 us each for the epilogue; issuing a cuBLASLt call costs ~7 us (cuBLAS's 5
# plus creating its four descriptors; the algorithm is cached per shape).
FUSED_GONE = ("bias_act", "bias_grad 0", "bias_grad 1", "act_backward")
HOST_FUSED = 4*3e-6 + 8*7e-6
print("fused: host", HOST_FUSED*1e6)
for (s,B),r in rate.items():
    w=widths[s]; F=flops(w)*B
    for g,bw in gpus.items():
        for p in ("fp32","tf32","bf16"):
            gemm = F/r[p] + 8*2e-6 + 8*1e-6 + sum(B*w[l+1]/8 for l in range(2))/(0.75*bw)
            el = sum(t for n,t,_ in elem(w,B,bw,p) if not n.startswith(FUSED_GONE))
            gpu = gemm+el
            on = gpu+8e-6; off = max(gpu,HOST_FUSED)+10e-6
            print(f"fused {s}{B} {g} {p}: gemm {gemm*1e6:.1f} elem {el*1e6:.1f} gpu {gpu*1e6:.1f} | on {on*1e6:.0f}us {B/on/1e6:.2f}M | off {off*1e6:.0f}us {B/off/1e6:.2f}M")
