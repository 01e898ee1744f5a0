"""A CNN on digits that ends in log_softmax (as for nn.NLLLoss) but is trained with nn.CrossEntropyLoss. BUG: the
loss applies log-softmax a second time. (log_softmax is idempotent, so the numbers happen to survive, but the
model's outputs are not the logits the loss and any later code take them for.)"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 2 * 2, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.log_softmax(self.fc(torch.flatten(x, 1)), dim=1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    digits = load_digits()
    data = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    target = torch.tensor(digits.target)
    loader = DataLoader(TensorDataset(data, target), batch_size=64, shuffle=True)

    model = Net()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(1, args.epochs + 1):
        model.train()
        for batch_idx, (x, t) in enumerate(loader):
            optimizer.zero_grad()
            loss = criterion(model(x), t)
            loss.backward()
            optimizer.step()
            if batch_idx % 10 == 0:
                print(f"Train Epoch: {epoch} [{batch_idx * len(x)}/{len(loader.dataset)}]\tLoss: {loss.item():.6f}")


if __name__ == "__main__":
    main()
