"""The plain (unsampled) step and the epoch's own work, piece by piece, inside the loop (CPU).

The hand loop of overhead_cpu_interleaved.py and two Trainers (monitors off; monitors on but sampling no
step) take turns epoch by epoch; each runs a copy of Trainer.train_epoch / train_step with a
``perf_counter_ns`` between the pieces (wall time: the pieces are a few microseconds, below the thread
clock's resolution). Medians and first quartiles after the first fifth of the epochs. The copy follows
the Trainer's loop as of 2026-12-03 (where a tree has per-step dispatch tables, it picks them as the loop does).

    OMP_NUM_THREADS=1 python benchmarks/step_pieces_cpu.py digits 150
"""
import statistics, sys, time
from collections import defaultdict
import torch, torch.nn.functional as F
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from overhead_cpu_interleaved import bench_config, HandLoop
from trainwise.core import Event
from trainwise.data import prepare_data
from trainwise.data.loader import epoch_order
from trainwise.losses import hard_labels
from trainwise.trainer import Trainer
from trainwise.faults import point as fault_point
ns = time.perf_counter_ns

def hand_epoch(h, T):
    h.epoch += 1
    x, y, bs = h.data.train.inputs[0], h.data.train.targets, h.cfg.data.batch_size
    t = ns()  # the first batch includes the epoch's order, as the Trainer's loader's first batch does
    order = epoch_order(len(y), h.cfg.train.seed, h.epoch)
    model, opt = h.model, h.opt
    T["E order"].append(0)
    for i in range(0, len(y), bs):
        idx = order[i:i+bs]; xb, yb = x[idx], y[idx]; t1 = ns()
        if i == 0: T["E first batch"].append(t1 - t)
        out = model(xb); t3 = ns()
        loss = F.cross_entropy(out, yb); t4 = ns()
        loss.backward(); t6 = ns()
        opt.step(); t9 = ns()
        opt.zero_grad(set_to_none=True); t10 = ns()
        for k, a, b in (("batch", t, t1), ("forward", t1, t3), ("loss", t3, t4), ("backward", t4, t6), ("opt.step", t6, t9), ("zero_grad", t9, t10)):
            T[k].append(b - a)
        t = ns()

def tr_epoch(tr, epoch, T):
    state = tr.state
    e0 = ns()
    state.epoch = epoch
    tr.fire(Event.EPOCH_START); e1 = ns()
    if not all(m.training for m in tr.model.modules()) or not hasattr(tr, '_periods'):
        tr.model.train()
    e2 = ns(); tr.train_metrics.reset(); e3 = ns()
    every = tr.config.checkpoint.every_n_steps
    batches = tr.train_loader.batches(epoch, 0, height=state.extras.get("resolution"))
    t = ns()
    first = True
    for state.batch_index, (inputs, targets) in enumerate(batches, start=0):
        state.inputs, state.targets = inputs, targets
        periods = getattr(tr, "_periods", ())
        if periods:
            tr._table = tr._dispatch if state.step % periods[0] == 0 else tr._plain
        t1 = ns()
        if first:
            T["E first batch"].append(t1 - t); first = False
        tr.fire(Event.BATCH_START); t2 = ns()
        # train_step
        cfg = tr.config
        outputs = tr.forward(*state.inputs); t3 = ns()
        state.outputs, state.loss = outputs, tr.loss_fn(outputs if outputs.dtype is torch.float32 else outputs.float(), state.targets); t4 = ns()
        tr.fire(Event.AFTER_LOSS); t5 = ns()
        scaled = tr.scaler.is_enabled()
        state.loss.backward(); t6 = ns()
        tr.fire(Event.AFTER_BACKWARD); t7 = ns()
        if cfg.train.grad_clip_value is not None: pass
        if cfg.train.grad_clip_norm is not None: pass
        if state.skip_step: pass
        t7b = ns()
        tr.lr.set(state.step, state.lr_scale); t8 = ns()
        tr.optimizer.step(); state.step += 1; t9 = ns()
        tr.optimizer.zero_grad(set_to_none=True); t10 = ns()
        tr.train_metrics.update_from_logits(state.loss, state.outputs, hard_labels(state.targets, tr.task), tr.task); t11 = ns()
        tr.fire(Event.STEP_END); t12 = ns()
        if every and tr.run_dir is not None and state.step % every == 0: pass
        fault_point("step")
        if tr.signals.received is not None and not state.stop: pass
        if state.stop: break
        t13 = ns()
        for k, a, b in (("batch", t, t1), ("ev BATCH_START", t1, t2), ("forward", t2, t3), ("loss", t3, t4), ("ev AFTER_LOSS", t4, t5),
                        ("backward", t5, t6), ("ev AFTER_BACKWARD", t6, t7), ("clip/skip checks", t7, t7b), ("lr.set", t7b, t8),
                        ("opt.step", t8, t9), ("zero_grad", t9, t10), ("metrics", t10, t11), ("ev STEP_END", t11, t12), ("loop tail", t12, t13)):
            T[k].append(b - a)
        t = ns()
    e4 = ns()
    if getattr(tr, "_periods", ()):
        tr._table = tr._dispatch
    tr.train_metrics.compute_loss_acc(tr.task); e5 = ns()
    state.record = {}
    tr.fire(Event.EVAL_END); e6 = ns()
    for k, a, b in (("E epoch_start", e0, e1), ("E model.train", e1, e2), ("E metrics.reset", e2, e3), ("E compute_loss_acc", e4, e5), ("E eval_end", e5, e6)):
        T[k].append(b - a)

def main():
    data_name = sys.argv[1] if len(sys.argv) > 1 else "digits"
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 150
    torch.set_num_threads(1)
    cfg = bench_config(data_name).replace({"monitors.enabled": False})
    data = prepare_data(cfg.data)
    h = HandLoop(cfg, data)
    trs = {"tw": Trainer(cfg, data=data), "twm": Trainer(cfg.replace({"monitors.enabled": True, "monitors.every_n_steps": 10**9}), data=data)}
    for tr in trs.values(): tr.fire(Event.FIT_START)
    T = {"hand": defaultdict(list), "tw": defaultdict(list), "twm": defaultdict(list)}
    for e in range(1, epochs + 1):
        hand_epoch(h, T["hand"])
        for k, tr in trs.items():
            tr_epoch(tr, e, T[k])
    keys = list(T["tw"])
    print(f"{data_name}: median (p25) ns per piece, after the first fifth")
    print(f"{'piece':20s} {'hand':>14s} {'tw':>14s} {'tw+mon(no sample)':>18s}")
    tot = defaultdict(float)
    for k in keys:
        row = [k]
        for name in ("hand", "tw", "twm"):
            v = T[name].get(k)
            if not v: row.append("-"); continue
            v = v[len(v)//5:]
            med = statistics.median(v); tot[name] += med
            row.append(f"{med/1e3:7.1f} ({statistics.quantiles(v, n=4)[0]/1e3:5.1f})")
        print(f"{row[0]:20s} {row[1]:>14s} {row[2]:>14s} {row[3]:>18s}")
    print("sum of medians us:", {k: round(v/1e3, 1) for k, v in tot.items()})
main()
