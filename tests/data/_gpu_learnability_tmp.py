"""Temporary device check (deleted after use): is the synth set learnable but not trivial?"""
import sys, time, json, os, contextlib, io
import numpy as np, torch, torch.nn as nn
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.models.detection.anchor_utils import AnchorGenerator
from scratchlab.data.synth import make_synth_detection

iters = [int(x) for x in sys.argv[1].split(",")]; out = sys.argv[2]; ntrain=int(sys.argv[3]); nval=int(sys.argv[4])
dev = "cuda" if torch.cuda.is_available() else "cpu"
t = time.time(); s = make_synth_detection(out + "/data", ntrain, nval, 128, 0); print("gen s", time.time() - t, s["train"], s["val"], flush=True)
def load(split):
    c = COCO(s[split]["json"]); items = []
    for iid in c.getImgIds():
        info = c.imgs[iid]; anns = c.loadAnns(c.getAnnIds(imgIds=iid))
        img = torch.from_numpy(np.asarray(Image.open(os.path.join(s[split]["images_dir"], info["file_name"])).convert("RGB"))).permute(2,0,1).float().div(255)
        b = torch.tensor([[a["bbox"][0], a["bbox"][1], a["bbox"][0]+a["bbox"][2], a["bbox"][1]+a["bbox"][3]] for a in anns]).float()
        m = torch.from_numpy(np.stack([c.annToMask(a) for a in anns]))
        items.append((iid, img.to(dev), {"boxes": b.to(dev), "labels": torch.tensor([a["category_id"] for a in anns]).to(dev), "masks": m.to(dev)}))
    return c, items
ctr, tr = load("train"); cva, va = load("val")
torch.manual_seed(0)
bb = resnet_fpn_backbone(backbone_name="resnet18", weights=None, norm_layer=lambda ch: nn.GroupNorm(32, ch), trainable_layers=5)
ag = AnchorGenerator(((16,), (32,), (64,), (128,), (256,)), ((0.5, 1.0, 2.0),) * 5)
model = MaskRCNN(bb, num_classes=9, rpn_anchor_generator=ag, min_size=256, max_size=256).to(dev)
opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-4)
B = 8; g = torch.Generator().manual_seed(0)
def evaluate(it):
    model.eval(); res = {"bbox": [], "segm": []}
    from pycocotools import mask as mu
    with torch.no_grad():
        for iid, img, _ in va:
            o = model([img])[0]
            for box, sc, lab, m in zip(o["boxes"].cpu(), o["scores"].cpu(), o["labels"].cpu(), o["masks"].cpu()):
                x0,y0,x1,y1 = box.tolist(); r = dict(image_id=iid, category_id=int(lab), score=float(sc))
                res["bbox"].append({**r, "bbox": [x0,y0,x1-x0,y1-y0]})
                rle = mu.encode(np.asfortranarray((m[0] > 0.5).numpy().astype(np.uint8))); rle["counts"] = rle["counts"].decode()
                res["segm"].append({**r, "segmentation": rle})
    for k in ("bbox", "segm"):
        if not res[k]: print(it, k, "no dets"); continue
        with contextlib.redirect_stdout(io.StringIO()):
            E = COCOeval(cva, cva.loadRes(res[k]), k); E.evaluate(); E.accumulate(); E.summarize()
        print(f"iter {it} {k} AP {E.stats[0]*100:.1f} AP50 {E.stats[1]*100:.1f} APs {E.stats[3]*100:.1f} APm {E.stats[4]*100:.1f} APl {E.stats[5]*100:.1f}", flush=True)
    model.train()
model.train(); t = time.time()
for it in range(1, max(iters) + 1):
    lr = 0.02 * min(1.0, it / 100) * (0.1 if it > 0.8 * max(iters) else 1.0)
    for pg in opt.param_groups: pg["lr"] = lr
    idx = torch.randint(len(tr), (B,), generator=g).tolist(); imgs, tg = [], []
    for i in idx:
        _, img, t0 = tr[i]
        if torch.rand(1, generator=g) < 0.5:
            W = img.shape[-1]; b = t0["boxes"].clone(); b[:, [0, 2]] = W - t0["boxes"][:, [2, 0]]
            img = img.flip(-1); t0 = {**t0, "boxes": b, "masks": t0["masks"].flip(-1)}
        imgs.append(img); tg.append(t0)
    loss = sum(model(imgs, tg).values())
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0); opt.step()
    if it % 100 == 0: print(it, f"loss {loss.item():.3f} t {time.time()-t:.0f}s", flush=True)
    if it in iters: evaluate(it)
