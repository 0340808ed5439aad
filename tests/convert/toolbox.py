"""Small networks written the way popular image-restoration and vision toolboxes write theirs
(activations called as functions in forward, residuals scaled by ``res_scale``, shuffles
followed by functional activations, loops over ModuleLists, torchvision's block layout), for
testing ``pyimg.convert`` on models it has never seen. Written for pyimg's tests; each class
docstring names the architecture it imitates and the patterns it exercises."""

import torch
import torch.nn.functional as F
from torch import nn


class MeanShift(nn.Module):
    """Subtracts (or adds back) a per-channel mean held in a buffer."""

    def __init__(self, channels: int, sign: float):
        super().__init__()
        self.sign = sign
        self.register_buffer("mean", torch.linspace(0.4, 0.5, channels).view(1, -1, 1, 1))

    def forward(self, x):
        return x + self.sign * self.mean


class EDSRBlock(nn.Module):
    """EDSR's residual block: conv, ReLU by function, conv, scaled by res_scale, plus x."""

    def __init__(self, channels: int, res_scale: float):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.res_scale = res_scale

    def forward(self, x):
        res = self.conv2(F.relu(self.conv1(x))).mul(self.res_scale)
        res += x
        return res


class EDSRLike(nn.Module):
    """EDSR (Lim et al. 2017): mean shift, head conv, residual blocks with res_scale, a body
    conv with a global skip, conv + PixelShuffle upsampler, tail conv, mean shift back.
    Fuses: conv + relu, conv * res_scale + residual (each block), body conv + skip,
    upsampler conv + shuffle."""

    def __init__(self, channels: int = 8, blocks: int = 2, scale: int = 2,
                 res_scale: float = 0.1):
        super().__init__()
        self.sub_mean, self.add_mean = MeanShift(3, -1.0), MeanShift(3, 1.0)
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.Sequential(*(EDSRBlock(channels, res_scale) for _ in range(blocks)),
                                  nn.Conv2d(channels, channels, 3, padding=1))
        self.upsample = nn.Sequential(nn.Conv2d(channels, channels * scale * scale, 3,
                                                padding=1), nn.PixelShuffle(scale))
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, x):
        x = self.head(self.sub_mean(x))
        res = self.body(x)
        res += x
        return self.add_mean(self.tail(self.upsample(res)))


class NoBNBlock(nn.Module):
    """BasicSR's ResidualBlockNoBN: identity + conv2(relu(conv1(x))) * res_scale."""

    def __init__(self, channels: int, res_scale: float = 1.0):
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        identity = x
        out = self.conv2(self.relu(self.conv1(x)))
        return identity + out * self.res_scale


class MSRResNetLike(nn.Module):
    """MSRResNet (BasicSR's SRResNet without batch norm): conv + shared LeakyReLU module,
    NoBN residual blocks, two x2 upsamplers each conv -> F.pixel_shuffle -> F.leaky_relu,
    a bilinear base added at the end. Fuses: conv + leaky relu (the first, the HR conv),
    conv + relu and conv + residual per block (res_scale 1), conv + shuffle + leaky relu
    per upsampler, last conv + the base."""

    def __init__(self, channels: int = 8, blocks: int = 2):
        super().__init__()
        self.conv_first = nn.Conv2d(3, channels, 3, 1, 1)
        self.body = nn.Sequential(*(NoBNBlock(channels) for _ in range(blocks)))
        self.upconv1 = nn.Conv2d(channels, channels * 4, 3, 1, 1)
        self.upconv2 = nn.Conv2d(channels, channels * 4, 3, 1, 1)
        self.conv_hr = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv_last = nn.Conv2d(channels, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)

    def forward(self, x):
        feat = self.lrelu(self.conv_first(x))
        out = self.body(feat)
        out = F.leaky_relu(F.pixel_shuffle(self.upconv1(out), 2), 0.1)
        out = F.leaky_relu(F.pixel_shuffle(self.upconv2(out), 2), negative_slope=0.1)
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        base = F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
        out += base
        return out


class DenseBlock(nn.Module):
    """ESRGAN's residual dense block: five convs, each seeing the concatenation of all before
    it, LeakyReLU(0.2) after the first four, and x5 * 0.2 + x."""

    def __init__(self, channels: int = 8, growth: int = 4):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(channels + i * growth, growth, 3, 1, 1)
                                   for i in range(4))
        self.conv5 = nn.Conv2d(channels + 4 * growth, channels, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        features = [x]
        for conv in self.convs:
            features.append(self.lrelu(conv(torch.cat(features, 1))))
        return self.conv5(torch.cat(features, 1)) * 0.2 + x


class RRDB(nn.Module):
    """Residual in residual dense block: three dense blocks, out * 0.2 + x."""

    def __init__(self, channels: int = 8, growth: int = 4):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = (DenseBlock(channels, growth) for _ in range(3))

    def forward(self, x):
        out = self.rdb3(self.rdb2(self.rdb1(x)))
        return out * 0.2 + x


class RRDBLike(nn.Module):
    """ESRGAN's RRDBNet (x2, nearest upsampling by interpolate + conv + leaky relu). Fuses:
    four conv + leaky relu and one conv * 0.2 + residual per dense block, trunk conv + skip,
    two conv + leaky relu after the upsamplings; the RRDB's own out * 0.2 + x follows a
    fused op, not a convolution, and is left alone."""

    def __init__(self, channels: int = 8, blocks: int = 1, growth: int = 4):
        super().__init__()
        self.conv_first = nn.Conv2d(3, channels, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(channels, growth) for _ in range(blocks)))
        self.conv_body = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv_up = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv_hr = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv_last = nn.Conv2d(channels, 3, 3, 1, 1)

    def forward(self, x):
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up(F.interpolate(feat, scale_factor=2, mode="nearest")),
                            negative_slope=0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


class SRVGGLike(nn.Module):
    """Real-ESRGAN's SRVGGNetCompact: a flat stack of conv + PReLU(channels) in a ModuleList
    run by index, a last conv, nn.PixelShuffle, plus the nearest-upsampled input. Fuses:
    every conv + PReLU, and the last conv + shuffle + the base."""

    def __init__(self, channels: int = 8, convs: int = 3, scale: int = 2):
        super().__init__()
        self.scale = scale
        body = [nn.Conv2d(3, channels, 3, 1, 1), nn.PReLU(num_parameters=channels)]
        for _ in range(convs):
            body += [nn.Conv2d(channels, channels, 3, 1, 1), nn.PReLU(num_parameters=channels)]
        body.append(nn.Conv2d(channels, 3 * scale * scale, 3, 1, 1))
        self.body = nn.ModuleList(body)
        self.upsampler = nn.PixelShuffle(scale)

    def forward(self, x):
        out = x
        for i in range(len(self.body)):
            out = self.body[i](out)
        out = self.upsampler(out)
        base = F.interpolate(x, scale_factor=self.scale, mode="nearest")
        out += base
        return out


class UNetLike(nn.Module):
    """A small U-Net as segmentation toolboxes write one: double convs with batch norm and
    functional ReLU, F.max_pool2d down, bilinear up and concatenation, except that the first
    level pools with indices and unpools with them (as SegNet does). Fuses: every conv + bn +
    relu, and the max-pool with indices + max-unpool pair (compact indices)."""

    def __init__(self, channels: int = 4, classes: int = 3):
        super().__init__()
        c = channels

        def double(cin, cout):
            return nn.ModuleList([nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(cout),
                                  nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(cout)])

        self.enc1, self.enc2, self.mid = double(3, c), double(c, 2 * c), double(2 * c, 2 * c)
        self.dec2, self.dec1 = double(4 * c, c), double(c, c)
        self.head = nn.Conv2d(c, classes, 1)

    @staticmethod
    def _run(block, x):
        conv1, bn1, conv2, bn2 = block
        x = F.relu(bn1(conv1(x)))
        return F.relu(bn2(conv2(x)), inplace=True)

    def forward(self, x):
        e1 = self._run(self.enc1, x)
        pooled, indices = F.max_pool2d(e1, 2, return_indices=True)
        e2 = self._run(self.enc2, pooled)
        m = self._run(self.mid, F.max_pool2d(e2, 2))
        up = F.interpolate(m, size=e2.shape[-2:], mode="bilinear", align_corners=False)
        d2 = self._run(self.dec2, torch.cat([up, e2], dim=1))
        d1 = self._run(self.dec1, F.max_unpool2d(d2, indices, 2, output_size=e1.shape[-2:]))
        return self.head(d1)


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + identity)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNetTrunk(nn.Module):
    """torchvision's ResNet stem and two stages of BasicBlocks (the second downsampling),
    then a VGG-style features Sequential of conv, BatchNorm2d, ReLU(inplace) and max-pool
    (vgg*_bn). Fuses: stem conv + bn + relu, per block conv + bn + relu and conv + bn +
    residual + relu (the residual before the activation), the downsample conv + bn, and the
    VGG conv + bn + relu."""

    def __init__(self, width: int = 4):
        super().__init__()
        w = width
        self.conv1 = nn.Conv2d(3, w, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(w, w), BasicBlock(w, w))
        self.layer2 = nn.Sequential(BasicBlock(w, 2 * w, stride=2), BasicBlock(2 * w, 2 * w))
        self.features = nn.Sequential(
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), nn.ReLU(inplace=True))

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.features(self.layer2(self.layer1(x)))


# Model -> (constructor, input channels scale of the output, fusions convert must make: a
# rule's name -> count).
TOOLBOX = {
    "EDSR": (EDSRLike, {"conv epilogue": 6}),
    "MSRResNet": (MSRResNetLike, {"conv epilogue": 9}),
    "RRDB": (RRDBLike, {"conv epilogue": 18}),
    "SRVGG": (SRVGGLike, {"conv epilogue": 5}),
    "UNet": (UNetLike, {"conv epilogue": 10, "max-pool indices to max-unpool": 1}),
    "ResNet": (ResNetTrunk, {"conv epilogue": 12}),
}
