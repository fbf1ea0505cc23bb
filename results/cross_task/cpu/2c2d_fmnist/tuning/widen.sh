python main.py -m experiment=tuned experiment_name=grid task=2c2d_fmnist hparams=paper_v1 optimizer=sgd_momentum optimizer.overshoot=3 'members.lr_scale=[64]' vectorize=true
python main.py -m experiment=tuned experiment_name=grid task=2c2d_fmnist hparams=paper_v1 optimizer=sgd_nesterov optimizer.overshoot=3 'members.lr_scale=[64]' vectorize=true
python main.py -m experiment=tuned experiment_name=grid task=2c2d_fmnist hparams=paper_v1 optimizer=sgdo optimizer.overshoot=3 'members.lr_scale=[64]' vectorize=true
python main.py -m experiment=tuned experiment_name=grid task=2c2d_fmnist hparams=paper_v1 optimizer=sgdo optimizer.overshoot=5 'members.lr_scale=[64]' vectorize=true
python main.py -m experiment=tuned experiment_name=grid task=2c2d_fmnist hparams=paper_v1 optimizer=sgdo optimizer.overshoot=7 'members.lr_scale=[64]' vectorize=true
