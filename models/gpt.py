"""GPT-2 models from transformers: a config-built causal LM, and GPT-2 + LoRA for pair tasks.

Pretrained weights come from the local Hugging Face cache, or the internet with
``data.download=true``; without either, ``pretrained`` falls back to the same architecture
from its config with random init, and says so.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from models import TaskModel


class GPT(TaskModel):
    """Causal LM from a GPT2Config (tied embeddings); loss = next-token cross-entropy."""

    vectorizes = "transformers' GPT-2 is not verified under torch.func.vmap"

    def __init__(
        self, n_layer: int = 12, n_head: int = 12, n_embd: int = 768, vocab_size: int = 50304,
        block_size: int = 1024, dropout: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        config = GPT2Config(
            n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=vocab_size,
            n_positions=block_size, resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
        )  # fmt: skip
        self.net = GPT2LMHeadModel(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(input_ids=x).logits  # type: ignore[no-any-return]

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(out.flatten(0, 1).float(), y.flatten())


class GPT2LoRAClassifier(TaskModel):
    """GPT-2 sequence classifier with LoRA adapters (peft); inputs are padded token ids.

    LoRA as the reference configured it at both commits: r = 6, dropout 0.1 and peft's default
    ``lora_alpha`` of 8 on GPT-2's attention projection ``c_attn`` (peft's default target).
    """

    vectorizes = "transformers' GPT-2 with peft's LoRA is not verified under torch.func.vmap"

    def __init__(
        self, num_labels: int = 2, lora_r: int = 6, lora_alpha: int = 8, lora_dropout: float = 0.1,
        pretrained: str | None = "gpt2", pad_token_id: int = 50256,
        n_layer: int = 12, n_head: int = 12, n_embd: int = 768, download: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        from peft import LoraConfig, get_peft_model
        from transformers import GPT2Config, GPT2ForSequenceClassification

        model = None
        if pretrained:
            try:
                model = GPT2ForSequenceClassification.from_pretrained(
                    pretrained, num_labels=num_labels, local_files_only=not download
                )
            except OSError:
                warnings.warn(
                    f"pretrained weights {pretrained!r} not in the Hugging Face cache "
                    "(data.download=true fetches them); "
                    "using a randomly initialised GPT-2 of the same shape",
                    stacklevel=2,
                )
        if model is None:
            config = GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd)
            config.num_labels = num_labels
            model = GPT2ForSequenceClassification(config)
        model.config.pad_token_id = pad_token_id
        lora = LoraConfig(
            task_type="SEQ_CLS", r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
            target_modules=["c_attn"], fan_in_fan_out=True,
        )  # fmt: skip
        self.pad_token_id = pad_token_id
        self.net = get_peft_model(model, lora)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Runs on the batch cut to its longest row (a collator's padding="longest"): the
        padding after every row's last token changes no logit and would only cost compute."""
        mask = self.attention_mask(x)
        width = int(mask.sum(-1).max())
        out = self.net(input_ids=x[:, :width], attention_mask=mask[:, :width])
        return out.logits  # type: ignore[no-any-return]

    def attention_mask(self, x: torch.Tensor) -> torch.Tensor:
        """1 up to each row's last non-pad token, 0 on the right padding after it.

        The pad id is GPT-2's eos, which also separates the texts of a pair: masking by token
        (x != pad) would hide the separator and leave the pair boundary invisible.
        """
        positions = torch.arange(x.shape[1], device=x.device)
        last = (positions * (x != self.pad_token_id)).argmax(-1, keepdim=True)
        return (positions <= last).long()

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(out.float(), y)

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"accuracy": (out.argmax(dim=1) == y).float().mean()}
