//! Image-file datasets for the streaming tests, and their training runs.

use std::path::{Path, PathBuf};

/// An ImageFolder of `per_class` JPEGs (sides `side` to 1.25 × `side`, smooth colour with some
/// texture) in each of two classes, and two a class for testing.
pub fn jpeg_folder(dir: &Path, per_class: usize, side: usize) -> PathBuf {
    let code = "import sys,os,numpy as np\nfrom PIL import Image\nroot,n,s=sys.argv[1],int(sys.argv[2]),int(sys.argv[3])\nrng=np.random.RandomState(0)\nfor split in ['train','test']:\n  for c,cls in enumerate(['a','b']):\n    os.makedirs(f'{root}/{split}/{cls}')\n    for i in range(n if split=='train' else 2):\n      h,w=s+int(rng.randint(0,s//4)),s+int(rng.randint(0,s//4))\n      y,x=np.mgrid[0:h,0:w]\n      img=np.stack([np.sin(x/(5+3*c+k)+i)*60+np.cos(y/(4+k))*60+128 for k in range(3)],-1)+rng.normal(0,8,(h,w,3))\n      Image.fromarray(np.clip(img,0,255).astype(np.uint8)).save(f'{root}/{split}/{cls}/{i:04d}.jpg',quality=90)";
    let root = dir.join("folder");
    super::run_python(
        code,
        &[
            root.to_str().unwrap(),
            &per_class.to_string(),
            &side.to_string(),
        ],
    );
    root
}

/// `trainer train` finetuning a narrow ResNet-18 from scratch on `data`, streamed or decoded
/// into memory, with `extra` (the image size, batch size, epochs).
pub fn run_args(data: &Path, exp: &Path, stream: bool, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--data-dir",
        data.to_str().unwrap(),
        "--exp-dir",
        exp.to_str().unwrap(),
        "--backbone",
        "none",
        "--arch",
        "resnet18",
        "--stem",
        "imagenet",
        "--width",
        "4",
        "--weights",
        "finetune",
        "--seed",
        "5",
    ]
    .map(String::from)
    .to_vec();
    args.extend(["--stream".to_string(), stream.to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}
