//! Embed libtorch's directory as an rpath so `trainer` runs without LD_LIBRARY_PATH.
//! torch-sys (`links = "tch"`) exports `DEP_TCH_LIBTORCH_LIB`; its own rpath never reaches
//! the final binary (see shared/notes/platform.md).
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
