//! Build script: embeds libtorch's directory as an rpath and compiles the c10d shim (with the
//! one-line autocast dtype setter in csrc/precision.cpp and ATen's multi-tensor ops, which tch
//! does not bind, in csrc/foreach.cpp).
//!
//! torch-sys (`links = "tch"`) exports `DEP_TCH_LIBTORCH_LIB`; its own rpath never reaches the
//! final binary (see shared/notes/platform.md). The shim (csrc/) is C++ against the wheel's
//! headers plus Debian's gloo headers; the NCCL part is compiled only when CUDA and NCCL headers
//! are found next to the wheel (`pip install "cuda-toolkit[crt,cccl]==13.0.3"`).
//!
//! JPEG decoding goes through libjpeg-turbo's libjpeg API (csrc/jpeg_region.c), linked
//! statically from Debian's `libjpeg62-turbo-dev` when its `libjpeg.a` is there, so the binary
//! carried to another machine does not need the library.
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    for f in [
        "csrc/c10d_shim.cpp",
        "csrc/c10d_shim.h",
        "csrc/guarded.h",
        "csrc/foreach.cpp",
        "csrc/grad_sync.cpp",
        "csrc/nccl.cpp",
        "csrc/precision.cpp",
        "csrc/jpeg_region.c",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }
    let lib = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB")
            .expect("torch-sys did not export DEP_TCH_LIBTORCH_LIB"),
    );
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    compile_shim(&lib);
    compile_jpeg();
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    if lib.join("libtorch_cuda.so").exists() {
        // tch links with --as-needed, which would drop libtorch_cuda and CUDA would never register.
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}

fn compile_shim(lib: &Path) {
    let torch = lib.parent().expect("libtorch lib dir has a parent");
    shim_build(torch)
        .file("csrc/c10d_shim.cpp")
        .file("csrc/precision.cpp")
        .file("csrc/foreach.cpp")
        .file("csrc/grad_sync.cpp")
        .compile("nls_c10d");
    compile_nccl(torch);
}

/// The NCCL backend when CUDA headers are found and it compiles; otherwise a stub that says how
/// to get it. A failed NCCL compile must never break the CPU build.
fn compile_nccl(torch: &Path) {
    if let Some(dirs) = cuda_include_dirs(torch) {
        let mut build = shim_build(torch);
        build.file("csrc/nccl.cpp").define("NLS_WITH_NCCL", None);
        build.define("USE_C10D_NCCL", None).define("USE_CUDA", None);
        for d in dirs {
            build.include(d);
        }
        match build.try_compile("nls_nccl") {
            Ok(()) => {
                println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-lc10_cuda,--as-needed");
                return;
            }
            Err(e) => println!("cargo:warning=NCCL backend not built (CPU-only shim): {e}"),
        }
    }
    shim_build(torch).file("csrc/nccl.cpp").compile("nls_nccl");
}

/// The region decoder against libjpeg-turbo's headers; the library itself static when it can be.
fn compile_jpeg() {
    if !Path::new("/usr/include/jpeglib.h").exists() && pkg_config_libdir("libjpeg").is_none() {
        panic!("jpeglib.h not found: install libjpeg-turbo's headers (apt-get install libjpeg62-turbo-dev)");
    }
    cc::Build::new()
        .file("csrc/jpeg_region.c")
        .opt_level(3)
        .compile("nls_jpeg");
    let dirs = pkg_config_libdir("libjpeg").into_iter().chain(
        [
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu",
            "/usr/lib64",
            "/usr/lib",
        ]
        .map(PathBuf::from),
    );
    for dir in dirs {
        if dir.join("libjpeg.a").exists() {
            println!("cargo:rustc-link-search=native={}", dir.display());
            println!("cargo:rustc-link-lib=static=jpeg");
            return;
        }
    }
    println!("cargo:rustc-link-lib=dylib=jpeg");
}

fn pkg_config_libdir(package: &str) -> Option<PathBuf> {
    let out = std::process::Command::new("pkg-config")
        .args(["--variable=libdir", package])
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !dir.trim().is_empty()).then(|| PathBuf::from(dir.trim()))
}

fn shim_build(torch: &Path) -> cc::Build {
    let include = torch.join("include");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++20")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .define("USE_C10D_GLOO", None)
        .define("USE_DISTRIBUTED", None)
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-deprecated-declarations")
        .flag_if_supported("-Wno-interference-size");
    build
}

/// CUDA runtime and NCCL headers shipped by pip packages next to torch (`site-packages/nvidia`).
fn cuda_include_dirs(torch: &Path) -> Option<Vec<PathBuf>> {
    let nvidia = torch.parent()?.join("nvidia");
    let dirs: Vec<PathBuf> = ["cu13/include", "nccl/include", "cudnn/include"]
        .iter()
        .map(|d| nvidia.join(d))
        .collect();
    let has = |d: &PathBuf, h: &str| d.join(h).exists();
    let complete = has(&dirs[0], "cuda_runtime_api.h")
        && has(&dirs[0], "crt/host_defines.h")
        && has(&dirs[0], "nv/target")
        && has(&dirs[1], "nccl.h");
    complete.then_some(dirs)
}
